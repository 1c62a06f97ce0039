import type { Logger } from 'pino';
import { FlotillaError, type StreamOpenMessage } from '@flotilla/protocol';
import type { ContainerEngine } from '../engine/container-engine.js';
import { dialStream, type DeviceCredentials } from './dial.js';
import { hostShellWords, serveHostShell } from './host-shell.js';
import { serveServiceShell } from './service-shell.js';
import { ServiceLookup } from './service-lookup.js';
import { StreamSocket } from './stream-socket.js';
import { serveTcp } from './tcp-tunnel.js';

export const DEFAULT_MAX_STREAMS = 256;
/** Streams refused for being over the limit still dial to say so; beyond this many more, requests are dropped. */
const REFUSALS_IN_FLIGHT = 32;

export interface RemoteAccessOptions extends DeviceCredentials {
  engine: Pick<ContainerEngine, 'serviceContainer' | 'exec'>;
  /** The agent's engine namespace (empty on a device). */
  namespace: string;
  /** The app whose services requests name (the fleet's app); undefined: whichever app runs the service. */
  appId: () => number | undefined;
  /** The host shell command, split at spaces (default: $SHELL, else /bin/sh). */
  hostShell?: string;
  /** Streams open at once; requests beyond are refused with RATE_LIMITED (default 256). */
  maxStreams?: number;
  log: Logger;
}

/**
 * The device's side of remote access: for each `stream-open` the control plane sends, dial the stream's WebSocket
 * and serve the request on it: a TCP tunnel, a shell in a service container, or a shell on the host. Every stream
 * is tracked until its WebSocket closes, and stop() ends them all.
 */
export class RemoteAccess {
  private readonly streams = new Set<StreamSocket>();
  private readonly dialling = new Set<{ terminate(): void }>();
  private readonly services: ServiceLookup;
  private readonly hostShell: string[];
  private readonly maxStreams: number;
  private stopped = false;

  constructor(private readonly options: RemoteAccessOptions) {
    this.services = new ServiceLookup(options.engine, options.namespace, options.appId);
    this.hostShell = hostShellWords(options.hostShell ?? (process.env.SHELL || '/bin/sh'));
    this.maxStreams = options.maxStreams ?? DEFAULT_MAX_STREAMS;
  }

  /** Streams dialling or open. */
  get active(): number {
    return this.streams.size + this.dialling.size;
  }

  /** Serves one request from the control plane (the connection's onStreamOpen). */
  open(message: StreamOpenMessage): void {
    const { log } = this.options;
    if (this.stopped) return;
    if (this.active >= this.maxStreams + REFUSALS_IN_FLIGHT) {
      log.warn({ stream: message.id }, 'remote stream: too many at once; request dropped');
      return;
    }
    const refused = this.active >= this.maxStreams;
    void this.serve(message, refused);
  }

  /** Ends every stream (and the local ends: connections, processes) and waits until their WebSockets closed. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const ws of this.dialling) ws.terminate();
    const closing = [...this.streams].map((s) => {
      s.stop();
      return s.done;
    });
    await Promise.all(closing);
  }

  private async serve({ id, request }: StreamOpenMessage, refused: boolean): Promise<void> {
    const { log } = this.options;
    const { ws, opened } = dialStream(this.options, id);
    this.dialling.add(ws);
    try {
      await opened;
    } catch (error) {
      if (!this.stopped) log.warn({ stream: id, err: (error as Error).message }, 'remote stream: dial failed; dropped');
      return;
    } finally {
      this.dialling.delete(ws);
    }
    const stream = new StreamSocket(ws);
    this.streams.add(stream);
    void stream.done.then(() => this.streams.delete(stream));
    if (this.stopped) return stream.stop();
    if (refused) {
      log.warn({ stream: id }, 'remote stream: refused, too many open');
      stream.fail(new FlotillaError('RATE_LIMITED', `the device serves at most ${this.maxStreams} streams at once`));
      return;
    }
    const target = request.kind === 'tcp' ? `port ${request.port}` : request.tty ? 'terminal' : 'command';
    log.info({ stream: id, kind: request.kind, service: request.service ?? null, target }, 'remote stream opened');
    void stream.done.then(() => log.info({ stream: id }, 'remote stream closed'));
    try {
      if (request.kind === 'tcp') await serveTcp(stream, request, this.services);
      else if (request.service)
        await serveServiceShell(stream, { ...request, service: request.service }, this.services, this.options.engine);
      else await serveHostShell(stream, request, this.hostShell);
    } catch (error) {
      log.info({ stream: id, err: (error as Error).message }, 'remote stream failed');
      stream.fail(error);
    }
  }
}
