import { join } from 'node:path';
import type { Logger } from 'pino';
import type { DeviceLogLine } from '@flotilla/protocol';
import { LogCollector, type LogTarget } from './collector.js';
import { DockerLogSource } from './docker-log-source.js';
import { MemoryLogQueue, type LogQueue } from './log-queue.js';
import type { LogShipper } from './shipper.js';

export interface AgentLogsOptions {
  dataDir: string;
  dockerSocket: string;
  log: Logger;
  /** Keep queued lines on disk (`<data>/logs`, config.json `persistentLogging`) instead of in RAM. */
  persistent: boolean;
  /** Managed devices queue lines for the control plane; unmanaged ones only feed local listeners. */
  managed: boolean;
}

const FLUSH_MS = 1_000;

/**
 * The agent's log pipeline: the collector follows service containers and takes the agent's system lines; each
 * line goes to the queue (managed devices; shipped by LogShipper once provisioned) and to local listeners
 * (`GET /v2/local/logs`). Unmanaged devices keep no queue, so nothing accumulates in RAM without a reader.
 */
export class AgentLogs {
  private readonly listeners = new Set<(line: DeviceLogLine) => void>();
  private readonly queue: LogQueue | undefined;
  private readonly collector: LogCollector;
  private shipper: LogShipper | undefined;
  private readonly timer: NodeJS.Timeout;
  private stopped = false;

  private constructor(
    private readonly options: AgentLogsOptions,
    queue: LogQueue | undefined,
  ) {
    this.queue = queue;
    this.collector = new LogCollector(
      new DockerLogSource(options.dockerSocket),
      (line) => this.accept(line),
      join(options.dataDir, 'log-positions.json'),
    );
    this.timer = setInterval(() => this.flush(), FLUSH_MS);
    this.timer.unref();
  }

  static async create(options: AgentLogsOptions): Promise<AgentLogs> {
    let queue: LogQueue | undefined;
    if (options.managed) {
      // Loaded only when asked for: most devices keep logs in RAM.
      if (options.persistent)
        queue = new (await import('./disk-log-queue.js')).DiskLogQueue(join(options.dataDir, 'logs'));
      else queue = new MemoryLogQueue();
    }
    return new AgentLogs(options, queue);
  }

  /** Starts shipping queued lines (call once the device is provisioned, so its key is accepted). */
  async startShipping(shipping: {
    apiEndpoint: string;
    uuid: string;
    deviceApiKey: string;
    ca?: string[] | undefined;
  }): Promise<void> {
    if (!this.queue || this.shipper || this.stopped) return;
    const { LogShipper } = await import('./shipper.js');
    if (this.stopped) return;
    let failing = false;
    this.shipper = new LogShipper({
      ...shipping,
      queue: this.queue,
      onError: (error) => {
        if (!failing) this.options.log.warn({ err: error.message }, 'log shipping failed; will retry');
        failing = true;
      },
    });
  }

  get shipped(): number {
    return this.shipper?.shipped ?? 0;
  }

  system(message: string): void {
    this.collector.system(message);
  }

  /** Level-based: the containers to follow now (all running service containers). */
  sync(targets: readonly LogTarget[]): void {
    if (!this.stopped) this.collector.sync(targets);
  }

  subscribe(listener: (line: DeviceLogLine) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.collector.stop();
    await this.shipper?.stop();
    this.queue?.flush();
    this.queue?.close();
    this.listeners.clear();
  }

  private accept(line: DeviceLogLine): void {
    if (this.stopped) return;
    this.queue?.push(line);
    this.shipper?.wake();
    for (const listener of this.listeners) {
      try {
        listener(line);
      } catch (error) {
        this.options.log.warn({ err: (error as Error).message }, 'log listener failed');
      }
    }
  }

  private flush(): void {
    try {
      this.queue?.flush();
      this.collector.flush();
    } catch (error) {
      this.options.log.warn({ err: (error as Error).message }, 'flushing logs failed');
    }
  }
}
