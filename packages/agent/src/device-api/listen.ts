import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DeviceActions } from './device-actions.js';

export interface DeviceApiListener {
  port: number;
  close(): Promise<void>;
}

/**
 * Listens for the local device API on a plain node:http server and loads the Fastify app (server.ts) on the first
 * request. Most devices never receive one, and Fastify with its schema tooling costs ~7 MB of resident memory that
 * an idle device should not pay. Behaviour is the same as `app.listen()`: every request goes through the app.
 */
export async function listenDeviceApi(options: {
  actions: DeviceActions;
  apiKey: string;
  port: number;
  host: string;
}): Promise<DeviceApiListener> {
  let app:
    | Promise<{ route: (req: IncomingMessage, res: ServerResponse) => void; close: () => Promise<unknown> }>
    | undefined;
  const load = () =>
    (app ??= (async () => {
      const { buildDeviceApi } = await import('./server.js');
      const fastify = buildDeviceApi({ actions: options.actions, apiKey: options.apiKey });
      await fastify.ready();
      return {
        route: (req: IncomingMessage, res: ServerResponse) => fastify.routing(req, res),
        close: () => fastify.close(),
      };
    })());
  const server = createServer((req, res) => {
    load().then(
      (loaded) => loaded.route(req, res),
      () => {
        res.statusCode = 500;
        res.end();
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    async close() {
      // Streaming responses (GET /v2/local/logs) never end on their own.
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (app) await (await app).close().catch(() => undefined);
    },
  };
}
