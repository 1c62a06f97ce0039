import type { FastifyInstance } from 'fastify';
import { Gauge } from 'prom-client';
import type { EventBus } from '../bus/event-bus.js';
import type { AppContext } from '../context.js';
import { pruneSessions } from './sessions.js';
import type { StreamBroker } from './stream-broker.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The remote-access streams of this node, which deleting a device must end (remote-access/stream-broker.ts). */
    remoteAccess: StreamBroker;
  }
}

/**
 * Makes the broker reachable by the routes that must end streams (device and fleet deletion), relays stream
 * requests and endings from the other nodes, ends every stream when the server closes, and counts them.
 */
export function installRemoteAccess(
  app: FastifyInstance,
  ctx: AppContext,
  broker: StreamBroker,
  bus: EventBus,
  auditRetentionDays: number,
): void {
  app.decorate('remoteAccess', broker);
  // Every public-URL request is a record, so the log is bounded by age (0: kept forever).
  if (auditRetentionDays > 0) {
    let pruning: Promise<unknown> | undefined;
    const prune = () => {
      const before = new Date(Date.now() - auditRetentionDays * 86_400_000).toISOString();
      pruning ??= pruneSessions(ctx.db, before)
        .catch((error: unknown) => app.log.error({ err: error }, 'pruning the remote-access audit log failed'))
        .finally(() => {
          pruning = undefined;
        });
    };
    const timer = setInterval(prune, 3_600_000).unref();
    app.addHook('onReady', async () => prune());
    app.addHook('onClose', async () => {
      clearInterval(timer);
      await pruning;
    });
  }
  const unsubscribe = bus.subscribe((event) => {
    if (event.type === 'stream-open')
      broker
        .askDevice(event.deviceId, event.streamId)
        .catch((error: unknown) => app.log.error({ err: error }, 'asking a device for a stream failed'));
    else if (event.type === 'streams-end') broker.endDeviceStreams(event.deviceId, event.kind, event.reason, true);
  });
  app.addHook('preClose', async () => {
    unsubscribe();
    broker.closeAll();
  });
  new Gauge({
    name: 'flotilla_remote_streams',
    help: 'Remote-access streams relayed by this server node (shells, tunnel connections, public-URL requests)',
    labelNames: ['kind'],
    registers: [ctx.metrics.registry],
    collect() {
      for (const [kind, count] of Object.entries(broker.counts())) this.set({ kind }, count);
    },
  });
}
