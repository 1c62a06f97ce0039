import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { DEVICE_ROUTES, FlotillaError } from '@flotilla/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';

/** Timeouts and the connection cap of the HTTP server (all in milliseconds, except the count). */
export interface HttpLimits {
  /** Request line and headers must arrive within this (slowloris). */
  headerTimeoutMs: number;
  /** The body of an ordinary request must arrive within this after its headers. Long streams are exempt. */
  requestTimeoutMs: number;
  /** A connection on which nothing moves for this long is closed: idle keep-alive, stalled bodies and streams. */
  idleTimeoutMs: number;
  /** Open connections at most; more are refused at once. */
  maxConnections: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  headerTimeoutMs: 20_000,
  requestTimeoutMs: 60_000,
  idleTimeoutMs: 120_000,
  maxConnections: 10_000,
};

/**
 * Requests the server answers before fastify sees them: the public device URLs (remote-access/public-urls.ts),
 * whose paths and hosts belong to the devices' own HTTP services, WebSocket upgrades included.
 */
export interface FrontDoor {
  /** Set once the routes that use it are registered; until then every request goes to fastify. */
  route?: {
    matches(request: IncomingMessage): boolean;
    request(request: IncomingMessage, response: ServerResponse): void;
    upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void;
  };
}

function serverOptions(limits: HttpLimits) {
  return {
    headersTimeout: limits.headerTimeoutMs,
    requestTimeout: 0,
    keepAliveTimeout: limits.idleTimeoutMs,
    // How often Node looks for expired headers; its default (30 s) would let a short header timeout run long.
    connectionsCheckingInterval: Math.min(Math.max(Math.floor(limits.headerTimeoutMs / 4), 100), 30_000),
  };
}

/**
 * A fastify `serverFactory` for a Node HTTP server with these limits, HTTPS when `tls` is given. Node's own request
 * timeout (the whole request) stays off: it would cut the long streams below; requestTimeout() does that job per
 * route instead.
 */
export function httpServerFactory(limits: HttpLimits, frontDoor: FrontDoor = {}, tls?: { cert: string; key: string }) {
  return (handler: (req: IncomingMessage, res: ServerResponse) => void): Server => {
    const listener = (request: IncomingMessage, response: ServerResponse) => {
      if (frontDoor.route?.matches(request)) frontDoor.route.request(request, response);
      else handler(request, response);
    };
    // An https.Server is a tls.Server that emits the same 'request' and 'upgrade' events as an http.Server.
    const server = tls
      ? (createHttpsServer({ ...serverOptions(limits), cert: tls.cert, key: tls.key }, listener) as unknown as Server)
      : createServer(serverOptions(limits), listener);
    // WARNING: fastify's WebSocket plugin listens for 'upgrade' too and would route the public URL's upgrades as its
    // own (404); only emitting them elsewhere keeps them apart, so 'upgrade' is intercepted at the emitter.
    const emit = server.emit.bind(server) as (event: string, ...args: unknown[]) => boolean;
    server.emit = ((event: string, ...args: unknown[]) => {
      const route = frontDoor.route;
      if (event === 'upgrade' && route?.matches(args[0] as IncomingMessage)) {
        route.upgrade(args[0] as IncomingMessage, args[1] as Duplex, args[2] as Buffer);
        return true;
      }
      return emit(event, ...args);
    }) as Server['emit'];
    // INVARIANT: an upgraded WebSocket is not subject to this (ws clears the socket timeout); SSE follow streams
    // send a heartbeat every 15 s, so the idle timeout must stay above that.
    server.setTimeout(limits.idleTimeoutMs);
    server.maxConnections = limits.maxConnections;
    return server;
  };
}

/**
 * A plain-HTTP server with the same limits that hands every request and upgrade to `main` (the HTTPS server
 * fastify answers on): for loopback clients and a TLS-terminating proxy in front of an HTTPS server.
 */
export function plainHttpBeside(main: Server, limits: HttpLimits): Server {
  const plain = createServer(serverOptions(limits), (request, response) => main.emit('request', request, response));
  plain.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) =>
    main.emit('upgrade', request, socket, head),
  );
  plain.setTimeout(limits.idleTimeoutMs);
  plain.maxConnections = limits.maxConnections;
  return plain;
}

/** Silence after which the kernel starts probing a held stream's peer (then about 10 min of probes to give up). */
export const STREAM_KEEPALIVE_MS = 30_000;

/**
 * Keeps a request's connection open through silence: a device's log stream may go minutes without a line, and the
 * device, not the server, decides when it ends. Neither the request timeout nor the idle timeout applies to it;
 * TCP keep-alive probes instead find a peer that is gone (power cut, lost link), so it is not held forever.
 * WARNING: only for streams a device authenticated itself for; an anonymous held socket would be a free slowloris.
 */
export function holdStreamOpen(socket: {
  setTimeout(ms: number): unknown;
  setKeepAlive(on: boolean, ms: number): unknown;
}) {
  socket.setTimeout(0);
  socket.setKeepAlive(true, STREAM_KEEPALIVE_MS);
}

/**
 * Requests that may rightly take hours to send: a device's log stream (one long chunked request), registry blob
 * uploads over slow links, and WebSocket upgrades. They are bounded by the idle timeout instead (a stall, not a
 * slow but moving stream, closes them).
 */
function isLongStream(request: FastifyRequest): boolean {
  if (request.headers.upgrade !== undefined) return true;
  if (request.method === 'POST' && request.routeOptions.url === DEVICE_ROUTES.logStream.path) return true;
  return /^\/v2\/.+\/blobs\/uploads(?:\/|\?|$)/.test(request.url);
}

/**
 * The body of every other request must be complete within `timeoutMs` of its headers, else the client gets 408
 * REQUEST_TIMEOUT and the connection is closed (a client trickling its body a byte at a time holds nothing for long).
 */
export function registerRequestTimeout(app: FastifyInstance, timeoutMs: number): void {
  if (timeoutMs <= 0) return;
  app.addHook('onRequest', (request, reply, done) => {
    const raw = request.raw;
    if (raw.complete || isLongStream(request)) {
      done();
      return;
    }
    const timer = setTimeout(() => {
      if (raw.complete || raw.destroyed) return;
      const response = reply.raw;
      const socket = raw.socket;
      if (response.headersSent) {
        socket.destroy();
        return;
      }
      const body = new FlotillaError(
        'REQUEST_TIMEOUT',
        `the request body did not arrive within ${Math.round(timeoutMs / 1000)} s`,
      ).toBody();
      response.writeHead(408, { 'content-type': 'application/json; charset=utf-8', connection: 'close' });
      response.end(JSON.stringify(body), () => socket.destroy());
    }, timeoutMs);
    timer.unref();
    reply.raw.once('close', () => clearTimeout(timer));
    done();
  });
}
