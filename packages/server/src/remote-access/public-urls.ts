import {
  STATUS_CODES,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import type { Duplex } from 'node:stream';
import { FlotillaError } from '@flotilla/protocol';
import type { FastifyBaseLogger } from 'fastify';
import type { Db } from '../db/database.js';
import { toErrorBody } from '../errors/error-handler.js';
import type { FrontDoor } from '../http/limits.js';
import { deviceStreamDuplex } from './device-stream.js';
import { recordSessionEnd } from './sessions.js';
import type { StreamBroker } from './stream-broker.js';

/** Path-based public URLs: `<server>/public/<device uuid>/…`. */
export const PUBLIC_URL_PATH_PREFIX = '/public/';
const UUID = /^[0-9a-f]{32}$/;
/** Headers that describe one hop, not the message (RFC 9110 §7.6.1), dropped by a proxy. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);
const OPEN_TIMEOUT_MS = 10_000;

export interface PublicUrlsOptions {
  db: Db;
  broker: StreamBroker;
  /** The server's public base URL (scheme and port of the device URLs). */
  publicUrl: () => string;
  /** With a wildcard domain (`devices.example.com`), URLs are `<uuid>.devices.example.com`; else path-based. */
  domain?: string | undefined;
  log: FastifyBaseLogger;
}

interface Target {
  uuid: string;
  /** The path and query the device's service receives. */
  path: string;
}

/**
 * Public device URLs: HTTP requests (and WebSocket upgrades) for a device whose public URL is on are carried to
 * its port over a tunnel stream, one stream per client request; nothing else reaches a device. Answered in front
 * of fastify (FrontDoor), since their paths and hosts belong to the device's service.
 */
export class PublicUrls implements NonNullable<FrontDoor['route']> {
  constructor(private readonly options: PublicUrlsOptions) {}

  /** The URL a device is reachable at when its public URL is on. */
  urlFor(uuid: string): string {
    const base = new URL(this.options.publicUrl());
    if (!this.options.domain)
      return `${base.origin}${base.pathname.replace(/\/$/, '')}${PUBLIC_URL_PATH_PREFIX}${uuid}/`;
    return `${base.protocol}//${uuid}.${this.options.domain}${base.port ? `:${base.port}` : ''}/`;
  }

  matches(request: IncomingMessage): boolean {
    return this.target(request) !== undefined;
  }

  request(request: IncomingMessage, response: ServerResponse): void {
    const target = this.target(request)!;
    if (target.path === '') {
      // `/public/<uuid>` → `/public/<uuid>/`, so the service's relative links resolve under the prefix.
      response.writeHead(308, { location: `${request.url?.split('?')[0]}/` }).end();
      return;
    }
    void this.proxy(request, target, {
      answer: (upstream) => {
        response.writeHead(upstream.statusCode ?? 502, forwardable(upstream.headers));
        upstream.pipe(response);
      },
      fail: (error) => {
        if (response.headersSent) response.destroy();
        else sendError(response, error);
      },
      clientGone: (listener) => response.once('close', listener),
    });
  }

  upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const target = this.target(request)!;
    socket.on('error', () => socket.destroy());
    void this.proxy(request, target, {
      upgraded: (upstream, upstreamSocket, upstreamHead) => {
        socket.write(statusLine(upstream) + rawHeaders(upstream.rawHeaders));
        if (upstreamHead.length > 0) socket.write(upstreamHead);
        if (head.length > 0) upstreamSocket.write(head);
        upstreamSocket.pipe(socket).pipe(upstreamSocket);
        upstreamSocket.on('close', () => socket.destroy());
        socket.on('close', () => upstreamSocket.destroy());
      },
      answer: (upstream) => {
        // The service refused the upgrade: its answer is passed on, and the connection ends with it.
        socket.write(statusLine(upstream) + rawHeaders(upstream.rawHeaders));
        upstream.pipe(socket);
      },
      fail: (error) => {
        const { status, text } = gatewayAnswer(error);
        socket.end(
          `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
        );
      },
      clientGone: (listener) => socket.once('close', listener),
    });
  }

  private target(request: IncomingMessage): Target | undefined {
    const url = request.url ?? '/';
    if (this.options.domain) {
      const host = (request.headers.host ?? '').toLowerCase().replace(/:\d+$/, '');
      const suffix = `.${this.options.domain.toLowerCase()}`;
      if (host.endsWith(suffix)) {
        const uuid = host.slice(0, -suffix.length);
        if (UUID.test(uuid)) return { uuid, path: url };
      }
    }
    if (!url.startsWith(PUBLIC_URL_PATH_PREFIX)) return undefined;
    const rest = url.slice(PUBLIC_URL_PATH_PREFIX.length);
    const uuid = rest.slice(0, 32);
    if (!UUID.test(uuid)) return undefined;
    const tail = rest.slice(32);
    if (tail !== '' && !tail.startsWith('/') && !tail.startsWith('?')) return undefined;
    return { uuid, path: tail.startsWith('?') ? `/${tail}` : tail };
  }

  private async proxy(
    request: IncomingMessage,
    target: Target,
    on: {
      answer: (upstream: IncomingMessage) => void;
      upgraded?: (upstream: IncomingMessage, socket: Duplex, head: Buffer) => void;
      fail: (error: unknown) => void;
      clientGone: (listener: () => void) => void;
    },
  ): Promise<void> {
    const { db, broker } = this.options;
    const left = new AbortController();
    on.clientGone(() => left.abort());
    let id: string | undefined;
    let stream: Awaited<ReturnType<typeof deviceStreamDuplex>> | undefined;
    let reason = 'closed';
    let untrack = () => {};
    const finish = () => {
      untrack();
      if (!id) return;
      const sessionId = id;
      id = undefined;
      void recordSessionEnd(db, sessionId, {
        bytesIn: stream?.bytesIn ?? 0,
        bytesOut: stream?.bytesOut ?? 0,
        reason,
      }).catch((error: unknown) => this.options.log.error({ err: error }, 'recording a public-URL session failed'));
    };
    try {
      const device = await db
        .selectFrom('devices')
        .innerJoin('fleets', 'fleets.id', 'devices.fleet_id')
        .select(['devices.id', 'devices.uuid', 'devices.name', 'devices.public_url_port', 'fleets.organization_id'])
        .where('devices.uuid', '=', target.uuid)
        .executeTakeFirst();
      // INVARIANT: nothing of a device is reachable unless its public URL is on.
      if (!device || device.public_url_port === null)
        throw new FlotillaError('NOT_FOUND', 'no public URL is enabled at this address');
      const opened = await broker.open(
        {
          organizationId: device.organization_id,
          device: { id: device.id, uuid: device.uuid, name: device.name },
          user: null,
          kind: 'public-url',
          request: { kind: 'tcp', port: device.public_url_port },
          remoteAddress: request.socket.remoteAddress ?? null,
        },
        left.signal,
      );
      id = opened.id;
      stream = await deviceStreamDuplex(opened.device, OPEN_TIMEOUT_MS);
      const connection = stream;
      untrack = broker.track(opened.id, {
        deviceId: device.id,
        kind: 'public-url',
        end: (why) => {
          reason = why;
          connection.destroy();
          request.socket.destroy();
        },
      });
      connection.once('close', finish);
      on.clientGone(() => connection.destroy());
      const upstream = httpRequest({
        method: request.method,
        path: target.path,
        headers: upstreamHeaders(request),
        createConnection: () => connection,
      });
      upstream.on('response', on.answer);
      if (on.upgraded) upstream.on('upgrade', on.upgraded);
      upstream.on('error', (error) => {
        reason = `error: ${error.message}`;
        on.fail(error);
        connection.destroy();
      });
      request.pipe(upstream);
    } catch (error) {
      if (error instanceof FlotillaError && error.code !== 'NOT_FOUND') reason = `error: ${error.code}`;
      finish();
      on.fail(error);
    }
  }
}

/** The request as the device's service receives it: the same, minus this hop's headers, plus the X-Forwarded ones. */
function upstreamHeaders(request: IncomingMessage): IncomingHttpHeaders {
  const upgrade = request.headers.upgrade;
  const headers = forwardable(request.headers);
  const previous = request.headers['x-forwarded-for'];
  const client = request.socket.remoteAddress ?? '';
  headers['x-forwarded-for'] = previous ? `${previous}, ${client}` : client;
  headers['x-forwarded-proto'] = 'encrypted' in request.socket && request.socket.encrypted ? 'https' : 'http';
  if (request.headers.host) headers['x-forwarded-host'] = request.headers.host;
  // One stream per request: the proxied connection ends with its answer, unless it becomes a WebSocket.
  if (upgrade) {
    headers.connection = 'upgrade';
    headers.upgrade = upgrade;
  } else headers.connection = 'close';
  return headers;
}

function forwardable(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const kept: IncomingHttpHeaders = {};
  const named = new Set(
    String(headers.connection ?? '')
      .split(',')
      .map((name) => name.trim().toLowerCase()),
  );
  for (const [name, value] of Object.entries(headers))
    if (!HOP_BY_HOP.has(name) && !named.has(name) && value !== undefined) kept[name] = value;
  return kept;
}

function statusLine(response: IncomingMessage): string {
  return `HTTP/1.1 ${response.statusCode ?? 502} ${response.statusMessage ?? ''}\r\n`;
}

function rawHeaders(raw: string[]): string {
  let text = '';
  for (let i = 0; i + 1 < raw.length; i += 2) text += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return `${text}\r\n`;
}

/**
 * What a visitor sees when the device cannot be reached: 404 when no public URL is on there, 502 (a gateway's
 * failure, whatever the code: DEVICE_OFFLINE, NETWORK_ERROR …) otherwise, with the usual error body.
 */
function gatewayAnswer(error: unknown): { status: number; text: string } {
  const { body, internal } = toErrorBody(error);
  const status = error instanceof FlotillaError && error.code === 'NOT_FOUND' ? 404 : internal ? 500 : 502;
  return { status, text: JSON.stringify(body) };
}

function sendError(response: ServerResponse, error: unknown): void {
  const { status, text } = gatewayAnswer(error);
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(text);
}
