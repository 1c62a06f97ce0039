import WebSocket from 'ws';
import {
  DEVICE_CONNECT_ETAG_PARAM,
  DEVICE_ROUTES,
  FlotillaError,
  path,
  serverMessageSchema,
  type ActionMessage,
  type ActionResultMessage,
  type StreamOpenMessage,
} from '@flotilla/protocol';
import type { DeviceActions } from '../device-api/device-actions.js';
import { jittered } from '../util/wakeable.js';

export interface ControlPlaneConnectionOptions {
  apiEndpoint: string;
  uuid: string;
  deviceApiKey: string;
  /** CAs to verify the control plane with (util/trust.ts). */
  ca?: string[] | undefined;
  actions: DeviceActions;
  /** The ETag of the fetched target state the device holds (null: none), told to the server on each connect. */
  heldEtag: () => string | null;
  /** The app the fleet's actions address (this device's fleet app id) when an action names none. */
  defaultAppId: () => number | undefined;
  onEvent?: (event: { kind: 'connected' | 'disconnected' | 'action'; detail?: string }) => void;
  /** The server asks for a shell or tunnel stream (remote/): the agent dials it. Absent: such requests are ignored. */
  onStreamOpen?: (message: StreamOpenMessage) => void;
  baseBackoffMs?: number;
  maxBackoffMs?: number;
}

/**
 * The device's connection to the control plane: one outbound WebSocket (`GET /device/v1/<uuid>/connect`) that
 * hears target announcements and runs the actions it delivers (restart, reboot, identify, update now, …) through
 * the same DeviceActions as the local API, answering each with its result. Reconnects with capped, jittered exponential
 * backoff; the server delivers actions queued while the device was away on reconnect.
 */
export class ControlPlaneConnection {
  private socket: WebSocket | undefined;
  private stopped = false;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  connected = false;

  constructor(private readonly options: ControlPlaneConnectionOptions) {}

  start(): void {
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.socket?.terminate();
  }

  private connect(): void {
    if (this.stopped) return;
    const url = new URL(path(DEVICE_ROUTES.connect.path, { uuid: this.options.uuid }), this.options.apiEndpoint);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    // The server compares it with the current target and says `target-changed` at once when they differ, then
    // announces every later change: no change made around a reconnect waits for the next poll.
    const etag = this.options.heldEtag();
    if (etag) url.searchParams.set(DEVICE_CONNECT_ETAG_PARAM, etag);
    const socket = new WebSocket(url, {
      headers: { authorization: `Bearer ${this.options.deviceApiKey}` },
      handshakeTimeout: 15_000,
      ...(this.options.ca ? { ca: this.options.ca } : {}),
    });
    this.socket = socket;
    let alive = true;
    const heartbeat = setInterval(() => {
      // A silent peer (dead NAT mapping, cellular handover) is detected by the missing pong and replaced.
      if (!alive) socket.terminate();
      alive = false;
      socket.ping();
    }, 30_000);
    socket.on('pong', () => {
      alive = true;
    });
    socket.on('open', () => {
      this.failures = 0;
      this.connected = true;
      this.options.onEvent?.({ kind: 'connected' });
      // The server announces a target that changed while the connection was down; a server from before the etag
      // parameter does not, so the agent checks too (one conditional fetch, answered 304 when nothing changed).
      this.options.actions.triggerUpdate(false);
    });
    socket.on('message', (data) => {
      alive = true;
      void this.handle(socket, data.toString());
    });
    socket.on('error', () => undefined); // 'close' follows and schedules the retry
    socket.on('close', () => {
      clearInterval(heartbeat);
      if (this.connected) this.options.onEvent?.({ kind: 'disconnected' });
      this.connected = false;
      if (this.stopped) return;
      // Jittered: every device of a server node that died redials the other nodes, not all in the same instant.
      const delay = jittered(
        Math.min(this.options.maxBackoffMs ?? 60_000, (this.options.baseBackoffMs ?? 1_000) * 2 ** this.failures),
      );
      this.failures = Math.min(this.failures + 1, 16);
      this.timer = setTimeout(() => this.connect(), delay);
    });
  }

  private async handle(socket: WebSocket, text: string): Promise<void> {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      return;
    }
    const parsed = serverMessageSchema.safeParse(raw);
    if (!parsed.success) return; // a newer server's message kind: ignore, do not drop the connection
    const message = parsed.data;
    if (message.type === 'ping') {
      socket.send(JSON.stringify({ type: 'pong' }));
      return;
    }
    if (message.type === 'target-changed') {
      this.options.actions.triggerUpdate(false);
      return;
    }
    if (message.type === 'stream-open') {
      this.options.onStreamOpen?.(message);
      return;
    }
    const result: ActionResultMessage = { type: 'action-result', id: message.id, ok: true };
    try {
      this.options.onEvent?.({ kind: 'action', detail: message.action });
      await this.run(message);
    } catch (error) {
      result.ok = false;
      result.error =
        error instanceof FlotillaError
          ? { code: error.code, message: error.message }
          : { code: 'INTERNAL', message: error instanceof Error ? error.message : String(error) };
    }
    if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(result));
  }

  private async run(message: ActionMessage): Promise<void> {
    const { actions } = this.options;
    const force = message.force === true;
    const appId = message.appId ?? this.options.defaultAppId();
    const needApp = (): number => {
      if (appId === undefined) throw new FlotillaError('CONFLICT', 'the device runs no app yet');
      return appId;
    };
    const needService = (): string => {
      if (!message.service) throw new FlotillaError('VALIDATION_FAILED', `${message.action} needs a service`);
      return message.service;
    };
    switch (message.action) {
      case 'update':
        actions.triggerUpdate(force);
        return;
      case 'identify':
        return actions.identify();
      case 'reboot':
        return actions.reboot(force);
      case 'shutdown':
        return actions.shutdown(force);
      case 'restart':
        return actions.restartApp(needApp(), force);
      case 'purge':
        return actions.purgeApp(needApp(), force);
      case 'restart-service':
        return actions.serviceAction('restart', needApp(), needService(), force);
      case 'stop-service':
        return actions.serviceAction('stop', needApp(), needService(), force);
      case 'start-service':
        return actions.serviceAction('start', needApp(), needService(), force);
    }
  }
}
