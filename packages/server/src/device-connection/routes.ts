import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { DEVICE_ROUTES, deviceConnectQuerySchema, deviceMessageSchema, deviceUuidSchema } from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import { Gauge } from 'prom-client';
import { z } from 'zod';
import { completeAction, deliverPending, failOrphanedActions, openActions } from '../actions/actions.js';
import type { EventBus } from '../bus/event-bus.js';
import type { AppContext } from '../context.js';
import { authenticateDevice, presentedKeyHash } from '../device-api/device-auth.js';
import type { PollRow } from '../device-api/poll-lookup.js';
import type { LastSeenTracker } from '../device-api/last-seen.js';
import { parse } from '../http/parse.js';
import { dispatchBusMessages } from './bus-dispatch.js';
import type { ConnectionHub } from './connection-hub.js';
import { TargetWatcher } from './target-watcher.js';

const uuidParams = z.object({ uuid: deviceUuidSchema });

/**
 * The device connection: one WebSocket per device at `GET /device/v1/:uuid/connect` (device key), over which this
 * node pushes actions and `target-changed` news and devices answer. With several server nodes, `bus` carries an
 * action to the node holding its device's connection, and the news of its delivery and answer back
 * (bus-dispatch.ts); the target watcher announces target changes to the devices connected here. Returns it (tests).
 * `app` is the scope that has the WebSocket plugin (app.ts).
 */
export function registerDeviceConnection(
  app: FastifyInstance,
  ctx: AppContext,
  hub: ConnectionHub,
  bus: EventBus,
  lastSeen: LastSeenTracker,
  targetSweepMs?: number,
): TargetWatcher {
  const { db } = ctx;
  // A batch a rollout opens bumps its fleet's revision: announced through the bus like every other change.
  const watcher = new TargetWatcher(db, hub, ctx.targetStates, ctx.deviceLookup, bus, { sweepMs: targetSweepMs });
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
  const unsubscribe = dispatchBusMessages(db, hub, bus, app.log);
  app.addHook('onClose', async () => unsubscribe());

  app.addHook('preClose', async () => hub.closeAll());
  app.get(
    DEVICE_ROUTES.connect.path,
    {
      websocket: true,
      // Authenticate before the upgrade, so a bad key gets a plain 401 and no socket.
      preValidation: async (request) => {
        const keyHash = presentedKeyHash(request);
        const { uuid } = parse(uuidParams, request.params);
        // With the device's part when its target is not kept: the greeting then computes it with no read of its own.
        const device = await authenticateDevice(ctx.deviceLookup, uuid, keyHash, !ctx.targetStates.cache.has(uuid));
        const { etag } = parse(deviceConnectQuerySchema, request.query);
        Object.assign(request, { device: { ...device, uuid }, heldEtag: etag });
      },
    },
    (socket, request) => {
      const { device, heldEtag } = request as unknown as { device: PollRow & { uuid: string }; heldEtag?: string };
      const deviceId = device.id;
      // WARNING: nothing below keeps `request` (its headers, raw message and child logger): the closures live as
      // long as the connection, thousands of them on a node. A logger bound to the device id is made on error only.
      const log = app.log;
      // @fastify/websocket's own error listener holds its request and reply for the connection's whole life (about
      // KBs a device); ours holds the device id. ws closes the connection itself after an error (a bad frame, a
      // message over maxPayload); the listener only has to exist, or the error would be thrown.
      socket.removeAllListeners('error');
      socket.on('error', (error) => log.warn({ err: error, deviceId }, 'device connection error'));
      // The plugin routes an upgrade with a ServerResponse it attaches to the socket and never finishes, so the
      // socket would keep it, and through it the request, its reply and their loggers, as long as it is open.
      // Nothing answers on that response once upgraded: detached, they are collected.
      const raw = request.raw.socket as Socket & { _httpMessage?: ServerResponse | null };
      raw._httpMessage?.detachSocket(raw);
      // Before the attach: a hand-over to this connection is stamped at or after it, so never taken for an orphan.
      const connectedAt = new Date().toISOString();
      hub.attach(deviceId, socket);
      // A device that connects is alive; its live feed hears of the connection either way.
      lastSeen.seen(deviceId);
      ctx.deviceChanges.changed([deviceId]);
      // Told at once if its target moved on from the one it holds; see the INVARIANT in target-watcher.ts.
      watcher.greet(device, socket, heldEtag).then(
        (known) => {
          if (!known) socket.close(1008, 'device removed');
        },
        (error: unknown) => {
          log.error({ err: error, deviceId }, 'comparing a connecting device target failed; closing its connection');
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
          (error: unknown) => log.error({ err: error, deviceId }, 'recording an action result failed'),
        );
      });
      socket.on('close', () => {
        hub.detach(deviceId, socket);
        watcher.forget(deviceId, socket);
        ctx.deviceChanges.changed([deviceId]);
      });
      // Actions an earlier connection took unanswered are settled first (its node may have died holding them), then
      // the pending ones are handed to this one.
      void (async () => {
        const open = await openActions(db, deviceId, connectedAt);
        if (open.orphaned)
          for (const id of await failOrphanedActions(db, deviceId, connectedAt)) {
            hub.settled(id);
            bus.publish({ type: 'action-settled', actionId: id });
          }
        if (open.pending) await deliverPending(db, hub, deviceId);
      })().catch((error: unknown) => log.error({ err: error, deviceId }, 'delivering pending actions failed'));
    },
  );
  return watcher;
}
