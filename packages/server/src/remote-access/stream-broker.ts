import { randomBytes } from 'node:crypto';
import {
  DEVICE_ROUTES,
  FlotillaError,
  path,
  STREAM_CLOSE_REVOKED,
  streamRequestSchema,
  type RemoteSessionKind,
  type StreamControl,
} from '@flotilla/protocol';
import type { FastifyBaseLogger } from 'fastify';
import WebSocket from 'ws';
import type { EventBus } from '../bus/event-bus.js';
import type { Db } from '../db/database.js';
import type { ConnectionHub } from '../device-connection/connection-hub.js';
import { openSessionOf, recordSessionEnd, recordSessionStart, type SessionStart } from './sessions.js';
import { closeWith, holdFrames, relayWebSockets } from './stream-relay.js';

export type OpenRequest = Omit<SessionStart, 'id' | 'relayNode'>;

/** How long a user waits for the device to dial its half before DEVICE_OFFLINE. */
export const DEFAULT_DIAL_TIMEOUT_MS = 10_000;

interface Waiting {
  deviceId: number;
  kind: RemoteSessionKind;
  arrive: (socket: WebSocket) => void;
  cancel: (error: FlotillaError) => void;
}

interface Live {
  deviceId: number;
  kind: RemoteSessionKind;
  end: (reason: string) => void;
}

export interface StreamBrokerDeps {
  db: Db;
  hub: ConnectionHub;
  bus: EventBus;
  /** How the other server nodes reach this one (ws relay of a device's half that dialed elsewhere). */
  nodeUrl: () => string;
  log: FastifyBaseLogger;
  dialTimeoutMs?: number;
}

/**
 * Pairs the two halves of every remote-access stream: the user's (a WebSocket on the user API, or the server's own
 * public-URL proxy) and the device's (a WebSocket the agent dials when asked over its connection).
 *
 * The node that accepted the user's half is the stream's home: it records the session (remote_sessions, with its
 * own address as `relay_node`) and waits for the device's half. It asks the device directly when the device is
 * connected here, else through the bus, and the node holding the device asks it. The device dials whichever node
 * its load balancer picks; a node that is not the home relays that socket to the home node, presenting the
 * device's own credentials, so nodes need no secret of their own.
 *
 * INVARIANT: every open stream is in `live` until it ends, so an authority ending it (revoked credential, deleted
 * device, disabled public URL) reaches it on this node, and through the bus on the others.
 */
export class StreamBroker {
  private readonly waiting = new Map<string, Waiting>();
  private readonly live = new Map<string, Live>();
  private readonly forwarded = new Set<WebSocket>();

  constructor(private readonly deps: StreamBrokerDeps) {}

  /** Streams open or waiting on this node, by kind (metrics, tests). */
  counts(): Record<RemoteSessionKind | 'waiting', number> {
    const counts = { shell: 0, tunnel: 0, 'public-url': 0, waiting: this.waiting.size };
    for (const stream of this.live.values()) counts[stream.kind] += 1;
    return counts;
  }

  /**
   * Records the session, asks the device to dial, and resolves with the device's socket (held: nothing it sent is
   * lost before a relay takes it). Rejects with DEVICE_OFFLINE when it does not dial in time, or when `signal`
   * aborts (the user left); the session is then recorded as ended.
   */
  async open(request: OpenRequest, signal: AbortSignal): Promise<{ id: string; device: WebSocket }> {
    const { db, hub, bus } = this.deps;
    const id = randomBytes(16).toString('hex');
    await recordSessionStart(db, { ...request, id, relayNode: this.deps.nodeUrl() });
    const deviceId = request.device.id;
    let cancel: (error: FlotillaError) => void = () => undefined;
    const arrived = new Promise<WebSocket>((resolve, reject) => {
      const timer = setTimeout(
        () => cancel(new FlotillaError('DEVICE_OFFLINE', 'the device did not open the stream in time; is it online?')),
        this.deps.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS,
      );
      const stop = () => cancel(new FlotillaError('CONFLICT', 'the stream was closed before the device answered'));
      signal.addEventListener('abort', stop, { once: true });
      const settle = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', stop);
        this.waiting.delete(id);
      };
      cancel = (error) => {
        settle();
        reject(error);
      };
      this.waiting.set(id, {
        deviceId,
        kind: request.kind,
        cancel: (error) => cancel(error),
        arrive: (socket) => {
          settle();
          resolve(socket);
        },
      });
    });
    if (signal.aborted) cancel(new FlotillaError('CONFLICT', 'the stream was closed before the device answered'));
    else if (!hub.send(deviceId, { type: 'stream-open', id, request: request.request })) {
      // Connected to another node, or nowhere: with one node there is nobody else to ask.
      if (bus.shared) bus.publish({ type: 'stream-open', deviceId, streamId: id });
      else cancel(new FlotillaError('DEVICE_OFFLINE', 'the device is not connected'));
    }
    try {
      return { id, device: await arrived };
    } catch (error) {
      const ended = (error as FlotillaError).details as { reason?: string } | undefined;
      const reason =
        (error as FlotillaError).code === 'DEVICE_OFFLINE' ? 'device-offline' : (ended?.reason ?? 'closed');
      await recordSessionEnd(db, id, { bytesIn: 0, bytesOut: 0, reason });
      throw error;
    }
  }

  /**
   * The device's half of stream `id` arrived here (its key already checked). Paired when this node waits for it;
   * relayed to the stream's home node when another node does; refused otherwise (unknown, ended or expired).
   */
  async deviceDialed(
    device: { id: number; uuid: string },
    id: string,
    socket: WebSocket,
    authorization: string,
  ): Promise<void> {
    holdFrames(socket);
    const deviceId = device.id;
    const waiting = this.waiting.get(id);
    if (waiting) {
      if (waiting.deviceId === deviceId) waiting.arrive(socket);
      else closeWith(socket, 1008, 'not your stream');
      return;
    }
    const row = await openSessionOf(this.deps.db, id, deviceId);
    if (!row || row.relay_node === this.deps.nodeUrl()) {
      closeWith(socket, 1008, 'no such stream waiting');
      return;
    }
    this.forward(socket, row.relay_node, device.uuid, id, authorization);
  }

  /** Another node asks, through the bus, for stream `id` of a device that may be connected here. */
  async askDevice(deviceId: number, id: string): Promise<void> {
    if (!this.deps.hub.isConnected(deviceId)) return;
    const row = await openSessionOf(this.deps.db, id, deviceId);
    if (!row) return;
    const request = streamRequestSchema.parse(JSON.parse(row.request_json));
    this.deps.hub.send(deviceId, { type: 'stream-open', id, request });
  }

  /**
   * Relays a user's WebSocket to the device until either side closes, records the session's end and bytes, and
   * ends early when whoever `watch` registers it with says so (a revoked credential or membership).
   */
  async relayUser(user: WebSocket, request: OpenRequest, watch: (end: () => void) => () => void): Promise<void> {
    holdFrames(user);
    const left = new AbortController();
    user.once('close', () => left.abort());
    let opened: { id: string; device: WebSocket };
    try {
      opened = await this.open(request, left.signal);
    } catch (error) {
      const failure =
        error instanceof FlotillaError ? error : new FlotillaError('INTERNAL', 'opening the stream failed');
      if (!(error instanceof FlotillaError)) this.deps.log.error({ err: error }, 'opening a remote stream failed');
      sendControl(user, { type: 'error', code: failure.code, message: failure.message });
      closeWith(user, failure.code === 'FORBIDDEN' ? STREAM_CLOSE_REVOKED : 1011, failure.code);
      return;
    }
    const { id, device } = opened;
    let reason = 'closed';
    const { counters, done } = relayWebSockets(user, device);
    const end = (why: string, message: string) => {
      reason = why;
      sendControl(user, { type: 'error', code: 'FORBIDDEN', message });
      closeWith(user, STREAM_CLOSE_REVOKED, why);
      closeWith(device, STREAM_CLOSE_REVOKED, why);
    };
    this.live.set(id, { deviceId: request.device.id, kind: request.kind, end: (why) => end(why, endMessage(why)) });
    const unwatch = watch(() => end('revoked', 'your access to this device was revoked'));
    try {
      await done;
    } finally {
      unwatch();
      this.live.delete(id);
      await recordSessionEnd(this.deps.db, id, { bytesIn: counters.aToB, bytesOut: counters.bToA, reason }).catch(
        (error: unknown) => this.deps.log.error({ err: error }, 'recording the end of a remote session failed'),
      );
    }
  }

  /** Tracks a stream this node relays without a user socket (the public-URL proxy); returns the untrack function. */
  track(id: string, stream: Live): () => void {
    this.live.set(id, stream);
    return () => this.live.delete(id);
  }

  /** Ends the device's streams (of one kind, or all) on this node, and on the others unless told by them. */
  endDeviceStreams(
    deviceId: number,
    kind: RemoteSessionKind | null,
    reason: 'device-deleted' | 'disabled',
    fromBus = false,
  ): void {
    const ends = (stream: { deviceId: number; kind: RemoteSessionKind }) =>
      stream.deviceId === deviceId && (kind === null || stream.kind === kind);
    for (const stream of [...this.live.values()]) if (ends(stream)) stream.end(reason);
    for (const stream of [...this.waiting.values()])
      if (ends(stream)) stream.cancel(new FlotillaError('FORBIDDEN', endMessage(reason), { details: { reason } }));
    if (!fromBus) this.deps.bus.publish({ type: 'streams-end', deviceId, kind, reason });
  }

  /** Ends everything at server close. */
  closeAll(): void {
    for (const stream of [...this.live.values()]) stream.end('server closing');
    for (const socket of this.forwarded) socket.terminate();
  }

  private forward(device: WebSocket, homeNode: string, uuid: string, id: string, authorization: string): void {
    // The home node checks the device's key against the uuid, as for a direct dial.
    const url = new URL(path(DEVICE_ROUTES.stream.path, { uuid, id }), homeNode);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const home = new WebSocket(url, {
      headers: { authorization },
      perMessageDeflate: false,
      maxPayload: 1024 * 1024,
      handshakeTimeout: 10_000,
    });
    holdFrames(home);
    this.forwarded.add(home);
    home.once('open', () => {
      void relayWebSockets(device, home).done.finally(() => this.forwarded.delete(home));
    });
    home.once('error', (error) => {
      this.deps.log.warn({ err: error.message, stream: id }, 'relaying a device stream to its home node failed');
      this.forwarded.delete(home);
      closeWith(device, 1011, 'home node unreachable');
    });
  }
}

function endMessage(reason: string): string {
  if (reason === 'device-deleted') return 'the device was deleted';
  if (reason === 'disabled') return 'the public URL was turned off';
  return `the stream was ended: ${reason}`;
}

export function sendControl(socket: WebSocket, message: StreamControl): void {
  if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(message));
}
