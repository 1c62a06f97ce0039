import { spawn as spawnChild } from 'node:child_process';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import { connect } from 'node:net';
import { constants } from 'node:os';
import type { Duplex } from 'node:stream';
import { spawn as spawnPty } from '@lydell/node-pty';
import {
  FlotillaError,
  STREAM_CHANNEL,
  channelFrame,
  deviceSchema,
  enablePublicUrlRequestSchema,
  parseStreamControl,
  publicUrlSchema,
  readChannelFrame,
  remoteSessionSchema,
  remoteSessionsQuerySchema,
  shellQuerySchema,
  tunnelQuerySchema,
} from '@flotilla/protocol';
import type { ErrorCode, PublicUrl, RemoteSession, StreamControl } from '@flotilla/protocol';
import { WebSocket, WebSocketServer } from 'ws';

/**
 * A small, honest stand-in for the server's relay and the device's agent together, for testing the CLI's streams
 * before (and apart from) the real ones: it speaks the user half of remote-access.ts on loopback and serves each
 * stream for real: a shell is `sh` (in a pseudo-terminal when tty=1, with pipes otherwise), a tunnel is a TCP
 * connection to the port asked for. It checks the bearer token, refuses what the real server refuses with the same
 * error bodies, and records what it received, so tests assert on what crossed the wire.
 */
export interface FakeDevice {
  uuid: string;
  name: string;
  /** Service name → the address its container would have (a loopback address in tests). */
  services: Record<string, string>;
}

export interface FakeStream {
  kind: 'shell' | 'tunnel';
  device: FakeDevice;
  query: Record<string, string>;
  /** Control messages the user sent, in order. */
  controls: StreamControl[];
  /** Shell streams: the stdin bytes the user sent. */
  stdin(): Buffer;
  /** Cuts the connection without `exit` or `error`, as a crashed relay would. */
  drop(): void;
}

export interface FakeRelay {
  /** The server URL to log in with. */
  url: string;
  token: string;
  streams: FakeStream[];
  sessions: RemoteSession[];
  close(): Promise<void>;
}

export interface FakeRelayOptions {
  devices: FakeDevice[];
  /** Device names whose streams are refused with 403 FORBIDDEN (as for an observer). */
  forbidden?: string[];
}

const TOKEN = 'fake-relay-token';

export async function startFakeRelay(options: FakeRelayOptions): Promise<FakeRelay> {
  const streams: FakeStream[] = [];
  const sessions: RemoteSession[] = [];
  const publicUrls = new Map<string, number>();
  const sockets = new Set<WebSocket>();
  const wss = new WebSocketServer({ noServer: true });

  const resolveDevice = (ref: string): FakeDevice => {
    const found = options.devices.filter(
      (d) => d.uuid === ref || d.name === ref || (/^[0-9a-f]{7,}$/.test(ref) && d.uuid.startsWith(ref)),
    );
    if (found.length !== 1) throw new FlotillaError('DEVICE_NOT_FOUND', `no device ${JSON.stringify(ref)}`);
    return found[0]!;
  };
  const authorize = (request: IncomingMessage) => {
    if (request.headers.authorization !== `Bearer ${TOKEN}`)
      throw new FlotillaError('UNAUTHENTICATED', 'a valid API key or session token is required');
  };

  const server = createServer((request, response) => {
    handleHttp(request, response).catch((error: unknown) => sendError(response, error));
  });
  const handleHttp = async (request: IncomingMessage, response: ServerResponse) => {
    authorize(request);
    const url = new URL(request.url ?? '/', 'http://fake');
    const deviceRoute = url.pathname.match(/^\/api\/v1\/devices\/([^/]+)(\/public-url)?$/);
    if (deviceRoute) {
      const device = resolveDevice(decodeURIComponent(deviceRoute[1]!));
      if (!deviceRoute[2] && request.method === 'GET') return sendJson(response, 200, deviceBody(device));
      if (deviceRoute[2] && request.method === 'PUT') {
        const body = enablePublicUrlRequestSchema.safeParse(JSON.parse(await readBody(request)));
        if (!body.success) throw new FlotillaError('VALIDATION_FAILED', body.error.issues[0]?.message ?? 'invalid');
        publicUrls.set(device.uuid, body.data.port);
      } else if (deviceRoute[2] && request.method === 'DELETE') {
        publicUrls.delete(device.uuid);
        response.writeHead(204).end();
        return;
      } else if (!deviceRoute[2] || request.method !== 'GET') throw new FlotillaError('NOT_FOUND', 'no such route');
      const port = publicUrls.get(device.uuid);
      const answer: PublicUrl = {
        enabled: port !== undefined,
        port: port ?? null,
        url: port === undefined ? null : `https://${device.uuid}.devices.flotilla.test`,
      };
      return sendJson(response, 200, publicUrlSchema.parse(answer));
    }
    if (url.pathname === '/api/v1/remote-sessions' && request.method === 'GET') {
      const query = remoteSessionsQuerySchema.parse(Object.fromEntries(url.searchParams));
      const device = query.device === undefined ? undefined : resolveDevice(query.device);
      const items = sessions
        .filter((s) => !device || s.device.uuid === device.uuid)
        .toReversed()
        .slice(0, query.limit);
      return sendJson(response, 200, { items: items.map((s) => remoteSessionSchema.parse(s)) });
    }
    throw new FlotillaError('NOT_FOUND', 'no such route');
  };

  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    try {
      authorize(request);
      const url = new URL(request.url ?? '/', 'http://fake');
      const route = url.pathname.match(/^\/api\/v1\/devices\/([^/]+)\/(shell|tunnel)$/);
      if (!route) throw new FlotillaError('NOT_FOUND', 'no such route');
      const device = resolveDevice(decodeURIComponent(route[1]!));
      if (options.forbidden?.includes(device.name))
        throw new FlotillaError('FORBIDDEN', 'observers cannot open shells or tunnels');
      const query = Object.fromEntries(url.searchParams);
      const kind = route[2] as 'shell' | 'tunnel';
      const schema = kind === 'shell' ? shellQuerySchema : tunnelQuerySchema;
      const parsed = schema.safeParse(query);
      if (!parsed.success)
        throw new FlotillaError('VALIDATION_FAILED', `query: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
      wss.handleUpgrade(request, socket, head, (ws) => {
        sockets.add(ws);
        ws.once('close', () => sockets.delete(ws));
        const stream = record(kind, device, query, ws, request.socket.remoteAddress ?? null);
        if (kind === 'shell') serveShell(ws, stream, device, shellQuerySchema.parse(query));
        else serveTunnel(ws, stream, device, tunnelQuerySchema.parse(query));
      });
    } catch (error) {
      const failure = error instanceof FlotillaError ? error : new FlotillaError('INTERNAL', String(error));
      const body = JSON.stringify(failure.toBody());
      socket.end(
        `HTTP/1.1 ${failure.status} Refused\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    }
  });

  /** The stream's audit record and what the user sent, counted as the real relay counts it. */
  const record = (
    kind: 'shell' | 'tunnel',
    device: FakeDevice,
    query: Record<string, string>,
    ws: WebSocket,
    remoteAddress: string | null,
  ): FakeStream & { sent(bytes: number): void } => {
    const session: RemoteSession = {
      id: String(sessions.length + 1),
      kind,
      device: { uuid: device.uuid, name: device.name },
      user: { id: 1, username: 'admin' },
      target:
        kind === 'shell'
          ? (query.service ?? 'host')
          : `${query.service ? `service ${query.service} ` : ''}port ${query.port}`,
      remoteAddress,
      startedAt: new Date().toISOString(),
      endedAt: null,
      bytesIn: 0,
      bytesOut: 0,
      endReason: null,
    };
    sessions.push(session);
    const stdin: Buffer[] = [];
    const stream = {
      kind,
      device,
      query,
      controls: [] as StreamControl[],
      stdin: () => Buffer.concat(stdin),
      drop: () => ws.terminate(),
      sent: (bytes: number) => {
        session.bytesOut += bytes;
      },
    };
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        const control = parseStreamControl(data.toString('utf8'));
        if (control) stream.controls.push(control);
        return;
      }
      const frame = kind === 'shell' ? readChannelFrame(data) : { channel: STREAM_CHANNEL.stdin, data };
      session.bytesIn += frame?.data.length ?? 0;
      if (kind === 'shell' && frame) stdin.push(Buffer.from(frame.data));
    });
    ws.once('close', () => {
      session.endedAt = new Date().toISOString();
      session.endReason = 'closed';
    });
    streams.push(stream);
    return stream;
  };

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('the fake relay has no address');
  return {
    url: `http://127.0.0.1:${address.port}`,
    token: TOKEN,
    streams,
    sessions,
    async close() {
      for (const ws of sockets) ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function control(ws: WebSocket, message: StreamControl): void {
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
}

/** More than this unsent to the user and the device stops reading its output, as the agent does. */
const WINDOW = 1024 * 1024;

/** Sends device output, counting it for the audit record; pauses `source` while the user does not keep up. */
function output(
  ws: WebSocket,
  stream: { sent(bytes: number): void },
  frame: Uint8Array,
  payload: number,
  source?: NodeJS.ReadableStream,
): void {
  if (ws.readyState !== WebSocket.OPEN) return;
  stream.sent(payload);
  ws.send(frame, { binary: true }, () => {
    if (source?.isPaused() && ws.bufferedAmount < WINDOW / 2) source.resume();
  });
  if (source && ws.bufferedAmount > WINDOW) source.pause();
}

/** `sh` (or `sh -c <command>`) as the device would run it on its host. */
function serveShell(
  ws: WebSocket,
  stream: { sent(bytes: number): void },
  device: FakeDevice,
  query: ReturnType<typeof shellQuerySchema.parse>,
): void {
  // The agent runs a service's shell in its container; this fake runs every shell on its host, and refuses a
  // service the device does not have as the agent does.
  if (query.service !== undefined && device.services[query.service] === undefined) {
    control(ws, { type: 'error', code: 'SERVICE_NOT_FOUND', message: `no service ${query.service} on the device` });
    ws.close(1000);
    return;
  }
  const args = query.command === undefined ? [] : ['-c', query.command];
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/tmp', PS1: '$ ', TERM: 'xterm' };
  if (query.tty === '1') {
    const pty = spawnPty('sh', args, { cols: query.cols ?? 80, rows: query.rows ?? 24, env, cwd: '/tmp' });
    pty.onData((data) => {
      const bytes = Buffer.from(data);
      output(ws, stream, channelFrame(STREAM_CHANNEL.stdout, bytes), bytes.length);
    });
    pty.onExit(({ exitCode, signal }) => {
      control(ws, { type: 'exit', code: signal ? 128 + signal : exitCode });
      ws.close(1000);
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        const frame = readChannelFrame(data);
        if (frame?.channel === STREAM_CHANNEL.stdin) pty.write(frame.data.toString('utf8'));
        return;
      }
      const message = parseStreamControl(data.toString('utf8'));
      if (message?.type === 'resize') pty.resize(message.cols, message.rows);
    });
    ws.once('close', () => pty.kill('SIGHUP'));
    control(ws, { type: 'ready' });
    return;
  }
  // Its own process group, so ending the stream ends what the command started too (a `sleep` holding stdout).
  const child = spawnChild('sh', args, { env, cwd: '/tmp', stdio: 'pipe', detached: true });
  child.stdout.on('data', (data: Buffer) =>
    output(ws, stream, channelFrame(STREAM_CHANNEL.stdout, data), data.length, child.stdout),
  );
  child.stderr.on('data', (data: Buffer) =>
    output(ws, stream, channelFrame(STREAM_CHANNEL.stderr, data), data.length, child.stderr),
  );
  child.stdin.on('error', () => undefined);
  child.once('spawn', () => control(ws, { type: 'ready' }));
  // 'close' comes after the child's stdout and stderr ended: every output frame was sent before `exit`.
  child.once('close', (code, signal) => {
    const number = signal ? 128 + constants.signals[signal] : (code ?? 1);
    control(ws, { type: 'exit', code: number });
    ws.close(1000);
  });
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) {
      const frame = readChannelFrame(data);
      if (frame?.channel === STREAM_CHANNEL.stdin) child.stdin.write(frame.data);
      return;
    }
    if (parseStreamControl(data.toString('utf8'))?.type === 'eof') child.stdin.end();
  });
  ws.once('close', () => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      // Already gone.
    }
  });
}

/** One TCP connection from the device to its host (127.0.0.1) or a service's address. */
function serveTunnel(
  ws: WebSocket,
  stream: { sent(bytes: number): void },
  device: FakeDevice,
  query: ReturnType<typeof tunnelQuerySchema.parse>,
): void {
  const host = query.service === undefined ? '127.0.0.1' : device.services[query.service];
  if (host === undefined) {
    control(ws, { type: 'error', code: 'SERVICE_NOT_FOUND', message: `no service ${query.service} on the device` });
    ws.close(1000);
    return;
  }
  const target = connect({ host, port: query.port, allowHalfOpen: true });
  let pending = 0;
  target.once('connect', () => {
    control(ws, { type: 'ready' });
    target.on('data', (data: Buffer) => {
      pending += data.length;
      stream.sent(data.length);
      ws.send(data, { binary: true }, () => {
        pending -= data.length;
        if (pending < 512 * 1024 && target.isPaused()) target.resume();
      });
      if (pending > 1024 * 1024) target.pause();
    });
    target.once('end', () => control(ws, { type: 'eof' }));
  });
  target.once('error', (error: NodeJS.ErrnoException) => {
    const code: ErrorCode = 'NETWORK_ERROR';
    control(ws, {
      type: 'error',
      code,
      message: `cannot connect to port ${query.port}: ${error.code ?? error.message}`,
    });
    ws.close(1000);
  });
  target.once('close', () => {
    if (ws.readyState === WebSocket.OPEN) ws.close(1000);
  });
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) {
      if (!target.write(data)) {
        ws.pause();
        target.once('drain', () => ws.resume());
      }
      return;
    }
    if (parseStreamControl(data.toString('utf8'))?.type === 'eof') target.end();
  });
  ws.once('close', () => target.destroy());
}

function deviceBody(device: FakeDevice) {
  return deviceSchema.parse({
    id: 1,
    uuid: device.uuid,
    name: device.name,
    fleet: 'kitchen',
    deviceType: 'generic-amd64',
    isOnline: true,
    lastSeenAt: new Date().toISOString(),
    status: 'Idle',
    pinnedRelease: null,
    runningRelease: null,
    targetRelease: null,
    osVersion: null,
    osVariant: null,
    agentVersion: null,
    ipAddress: null,
    macAddress: null,
    metrics: {
      cpuUsage: null,
      cpuTemp: null,
      memoryUsage: null,
      memoryTotal: null,
      storageUsage: null,
      storageTotal: null,
    },
    services: {},
    createdAt: new Date().toISOString(),
  });
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

function sendError(response: ServerResponse, error: unknown): void {
  const failure =
    error instanceof FlotillaError
      ? error
      : new FlotillaError('VALIDATION_FAILED', error instanceof Error ? error.message : String(error));
  sendJson(response, failure.status, failure.toBody());
}
