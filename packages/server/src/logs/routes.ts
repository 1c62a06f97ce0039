import { DEVICE_ROUTES, FlotillaError, USER_ROUTES as R, deviceUuidSchema, type LogEntry } from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import type { Readable } from 'node:stream';
import { z } from 'zod';
import type { AppContext } from '../context.js';
import { authenticateDevice, presentedKeyHash } from '../device-api/device-auth.js';
import { serviceNamesOfFleet } from '../releases/releases.js';
import { visibleDevice } from '../devices/devices.js';
import { parse } from '../http/parse.js';
import { EventStreams } from '../http/event-stream.js';
import { holdStreamOpen } from '../http/limits.js';
import { HIJACKED, serve } from '../http/serve.js';
import type { EventBus } from '../bus/event-bus.js';
import type { LogHub } from './log-hub.js';
import type { LogStore } from './log-store.js';
import { LogStreamError, readLogStream } from './ndjson-reader.js';

const uuidParams = z.object({ uuid: deviceUuidSchema });

/**
 * Device logs: `POST /device/v2/:uuid/log-stream` (device key; gzip NDJSON, read as it arrives) and
 * `GET /api/v1/devices/:uuid/logs?tail=&service=&follow=1` (user; JSON, or Server-Sent Events when following).
 * Followers on other server nodes hear of new lines through `bus` and read them from the database.
 */
export function registerLogRoutes(
  app: FastifyInstance,
  ctx: AppContext,
  store: LogStore,
  hub: LogHub,
  bus: EventBus,
): void {
  const { db } = ctx;
  // One read at a time, in the order the news came, so followers see lines in order.
  let reading: Promise<void> = Promise.resolve();
  const unsubscribe = bus.subscribe((message) => {
    if (message.type !== 'logs' || hub.followers(message.deviceId) === 0) return;
    reading = reading
      .then(async () => {
        if (hub.followers(message.deviceId) > 0)
          hub.publish(message.deviceId, await store.range(message.deviceId, message.afterId, message.lastId));
      })
      .catch((error: unknown) => app.log.error({ err: error }, 'reading log lines stored by another node failed'));
  });
  app.addHook('onClose', async () => {
    unsubscribe();
    await reading;
    await store.close();
  });
  const followers = new EventStreams(app, db);

  // The log stream is read as a stream, not buffered: it may stay open as long as the device keeps writing.
  app.addContentTypeParser('application/x-ndjson', (_request, payload, done) => done(null, payload));

  app.post(DEVICE_ROUTES.logStream.path, async (request, reply) => {
    const keyHash = presentedKeyHash(request);
    const { uuid } = parse(uuidParams, request.params);
    const device = await authenticateDevice(ctx.deviceLookup, uuid, keyHash);
    holdStreamOpen(request.raw.socket);
    const body = request.body as Readable | undefined;
    if (!body || typeof (body as Readable).pipe !== 'function') {
      throw new FlotillaError('UNSUPPORTED_MEDIA_TYPE', 'send the log stream as application/x-ndjson');
    }
    let serviceNames: Promise<Map<number, string>> | undefined;
    const namesOnce = () => (serviceNames ??= serviceNamesOfFleet(db, device.fleet_id));
    try {
      const result = await readLogStream(body, {
        encoding: request.headers['content-encoding'],
        onLines: async (lines) => {
          const stored = await store.append(device.id, lines, namesOnce);
          // Built only for a device someone follows here: most are followed by nobody.
          if (hub.followers(device.id) > 0) hub.publish(device.id, stored.entries());
          if (stored.lastId > 0)
            bus.publish({ type: 'logs', deviceId: device.id, afterId: stored.firstId - 1, lastId: stored.lastId });
        },
      });
      return reply.status(201).send({ accepted: result.accepted, rejected: result.rejected });
    } catch (error) {
      // WARNING: the body was read only in part and is read no further, so this connection cannot carry another
      // request: kept alive, the client's next request on it would wait behind the unread rest until a timeout.
      void reply.header('connection', 'close');
      if (error instanceof LogStreamError) {
        throw new FlotillaError(
          error.kind === 'too-large'
            ? 'PAYLOAD_TOO_LARGE'
            : error.kind === 'encoding'
              ? 'UNSUPPORTED_MEDIA_TYPE'
              : 'VALIDATION_FAILED',
          error.message,
        );
      }
      throw error;
    }
  });

  serve(app, db, R.deviceLogs, async ({ user, params, query, request, reply }) => {
    const device = await visibleDevice(db, user, params.uuid);
    const recent = await store.tail(device.id, query.tail, query.service);
    if (query.follow !== '1' && query.follow !== 'true') return { items: recent };

    let unsubscribe = () => {};
    const stream = followers.start({
      request,
      reply,
      user,
      // INVARIANT: the user can still see the device (membership kept, device not deleted).
      stillAllowed: (fresh) =>
        visibleDevice(db, fresh, device.uuid).then(
          () => true,
          () => false,
        ),
      onEnd: () => unsubscribe(),
    });
    const send = (entries: LogEntry[]) => {
      for (const entry of entries)
        if (!query.service || entry.serviceName === query.service)
          stream.write(`event: log\ndata: ${JSON.stringify(entry)}\n\n`);
    };
    // Subscribed before the backlog is written, so a stream that ends while writing it unsubscribes too.
    unsubscribe = hub.subscribe(device.id, send);
    send(recent);
    stream.write(': following\n\n');
    return HIJACKED;
  });
}
