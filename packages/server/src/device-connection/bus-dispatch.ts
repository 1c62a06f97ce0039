import type { FastifyBaseLogger } from 'fastify';
import { deliverPending, handOver, pendingAction } from '../actions/actions.js';
import type { EventBus } from '../bus/event-bus.js';
import type { Db } from '../db/database.js';
import type { ConnectionHub } from './connection-hub.js';

/**
 * What other server nodes say about device connections, applied to the devices connected to this node: an action
 * queued elsewhere is handed over here when its device is connected here, and the news of a delivery or an answer
 * wakes the callers waiting on this node. Returns the unsubscribe function.
 */
export function dispatchBusMessages(db: Db, hub: ConnectionHub, bus: EventBus, log: FastifyBaseLogger): () => void {
  return bus.subscribe((message) => {
    if (message.type === 'resync') {
      // Actions other nodes queued while this node could not hear them: offered to the devices connected here.
      void Promise.all(hub.connectedDeviceIds().map((id) => deliverPending(db, hub, id))).catch((error: unknown) =>
        log.error({ err: error }, 'offering pending actions again failed'),
      );
    } else if (message.type === 'action-delivered') hub.delivered(message.actionId);
    else if (message.type === 'action-settled') hub.settled(message.actionId);
    else if (message.type === 'action' && hub.isConnected(message.deviceId)) {
      void (async () => {
        const row = await pendingAction(db, message.deviceId, message.actionId);
        if (row && (await handOver(db, hub, message.deviceId, row)))
          bus.publish({ type: 'action-delivered', actionId: row.id });
      })().catch((error: unknown) => log.error({ err: error }, 'handing over an action from another node failed'));
    }
  });
}
