import websocket from '@fastify/websocket';
import {
  DEVICE_ROUTES,
  FlotillaError,
  USER_ROUTES as R,
  deviceConnectQuerySchema,
  deviceMessageSchema,
  deviceUuidSchema,
} from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import { Gauge } from 'prom-client';
import { z } from 'zod';
import type { AppContext } from '../context.js';
import { presentedKeyHash, requireOwnDevice } from '../device-api/device-auth.js';
import { visibleDevice } from '../devices/devices.js';
import { parse } from '../http/parse.js';
import { serve } from '../http/serve.js';
import type { EventBus } from '../bus/event-bus.js';
import type { ActionHub } from './action-hub.js';
import {
  completeAction,
  createAction,
  deliverPending,
  getAction,
  handOver,
  listActions,
  pendingAction,
} from './actions.js';
import { TargetWatcher } from './target-watcher.js';

const uuidParams = z.object({ uuid: deviceUuidSchema });

/**
 * Device actions. Users: `POST /api/v1/devices/:uuid/actions` (waits up to `?wait=` ms for the device's answer),
 * `GET …/actions`, `GET …/actions/:id`. Devices: one WebSocket at `GET /device/v1/:uuid/connect` (device key).
 * With several server nodes, `bus` carries an action to the node holding its device's connection, and the news
 * of its delivery and answer back.
 */
export async function registerActionRoutes(
  app: FastifyInstance,
  ctx: AppContext,
  hub: ActionHub,
  bus: EventBus,
): Promise<void> {
  const { db } = ctx;
  const watcher = new TargetWatcher(db, hub, ctx.stateCache);
  app.addHook('onReady', async () => watcher.start());
  app.addHook('preClose', async () => watcher.stop());
  new Gauge({
    name: 'flotilla_device_connections',
    help: 'Devices holding a WebSocket connection to this server node',
    registers: [ctx.metrics.registry],
    collect() {
      this.set(hub.connectedCount());
    },
  });
  const unsubscribe = bus.subscribe((message) => {
    if (message.type === 'resync') {
      // Actions other nodes queued while this node could not hear them: offered to the devices connected here.
      void Promise.all(hub.connectedDeviceIds().map((id) => deliverPending(db, hub, id))).catch((error: unknown) =>
        app.log.error({ err: error }, 'offering pending actions again failed'),
      );
    } else if (message.type === 'action-delivered') hub.delivered(message.actionId);
    else if (message.type === 'action-settled') hub.settled(message.actionId);
    else if (message.type === 'action' && hub.isConnected(message.deviceId)) {
      void (async () => {
        const row = await pendingAction(db, message.deviceId, message.actionId);
        if (row && (await handOver(db, hub, message.deviceId, row)))
          bus.publish({ type: 'action-delivered', actionId: row.id });
      })().catch((error: unknown) => app.log.error({ err: error }, 'handing over an action from another node failed'));
    }
  });
  app.addHook('onClose', async () => unsubscribe());

  serve(app, db, R.createDeviceAction, async ({ user, params, query, body }) => {
    const device = await visibleDevice(db, user, params.uuid);
    if (body.action.endsWith('-service') && !body.service)
      throw new FlotillaError('VALIDATION_FAILED', `${body.action} needs a service`);
    return createAction(db, hub, bus, device.id, body, query.wait);
  });

  serve(app, db, R.listDeviceActions, async ({ user, params }) => {
    const device = await visibleDevice(db, user, params.uuid);
    return { items: await listActions(db, device.id) };
  });

  serve(app, db, R.getDeviceAction, async ({ user, params }) => {
    const device = await visibleDevice(db, user, params.uuid);
    const action = await getAction(db, device.id, params.id);
    if (!action) throw new FlotillaError('NOT_FOUND', `no action ${params.id} for this device`);
    return action;
  });

  await app.register(async (scope) => {
    await scope.register(websocket, { options: { maxPayload: 1024 * 1024 } });
    scope.addHook('preClose', async () => hub.closeAll());
    scope.get(
      DEVICE_ROUTES.connect.path,
      {
        websocket: true,
        // Authenticate before the upgrade, so a bad key gets a plain 401 and no socket.
        preValidation: async (request) => {
          const keyHash = presentedKeyHash(request);
          const { uuid } = parse(uuidParams, request.params);
          const row = await db
            .selectFrom('devices')
            .select(['id', 'key_hash'])
            .where('uuid', '=', uuid)
            .executeTakeFirst();
          requireOwnDevice(row, keyHash);
          const { etag } = parse(deviceConnectQuerySchema, request.query);
          Object.assign(request, { deviceId: row!.id, heldEtag: etag });
        },
      },
      (socket, request) => {
        const { deviceId, heldEtag } = request as unknown as { deviceId: number; heldEtag: string | undefined };
        hub.attach(deviceId, socket);
        // Told at once if its target moved on from the one it holds; see the INVARIANT in target-watcher.ts.
        watcher.greet(deviceId, socket, heldEtag).then(
          (known) => {
            if (!known) socket.close(1008, 'device removed');
          },
          (error: unknown) => {
            request.log.error({ err: error }, 'comparing a connecting device target failed; closing its connection');
            socket.close(1011, 'try again');
          },
        );
        socket.on('message', (data) => {
          let raw: unknown;
          try {
            raw = JSON.parse(data.toString());
          } catch {
            return;
          }
          const parsed = deviceMessageSchema.safeParse(raw);
          if (!parsed.success || parsed.data.type !== 'action-result') return;
          const result = parsed.data;
          void completeAction(db, deviceId, result).then(
            () => {
              hub.settled(result.id);
              bus.publish({ type: 'action-settled', actionId: result.id });
            },
            (error: unknown) => request.log.error({ err: error }, 'recording an action result failed'),
          );
        });
        socket.on('close', () => hub.detach(deviceId, socket));
        void deliverPending(db, hub, deviceId).catch((error: unknown) =>
          request.log.error({ err: error }, 'delivering pending actions failed'),
        );
      },
    );
  });
}
