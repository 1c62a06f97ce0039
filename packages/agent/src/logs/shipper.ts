import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import { DEVICE_ROUTES, path } from '@flotilla/protocol';
import { httpExchange } from '../util/http.js';
import { jittered, pause } from '../util/wakeable.js';
import type { LogQueue } from './log-queue.js';

const gzip = promisify(gzipCallback);

export interface ShipperOptions {
  apiEndpoint: string;
  uuid: string;
  deviceApiKey: string;
  /** CAs to verify the control plane with (util/trust.ts). */
  ca?: string[] | undefined;
  queue: LogQueue;
  /** Most lines in one request. */
  batchLines?: number;
  /** How long to gather lines after the first one before sending (fewer, fuller requests). */
  lingerMs?: number;
  /** Backoff after a failed request: min(maxBackoffMs, baseBackoffMs · 2^n), jittered over its upper half. */
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  onError?: (error: Error) => void;
}

/**
 * Ships queued lines to `POST /device/v2/<uuid>/log-stream` as gzip NDJSON.
 *
 * Why batches and not one never-ending request: a line is acknowledged (removed from the queue) only when the
 * control plane has answered the request that carried it, so an outage or a restart resends instead of losing
 * (at-least-once). Each request is still a valid log stream for the protocol; lines reach the server within
 * `lingerMs` of being written.
 */
export class LogShipper {
  private stopped = false;
  private wakeUp: (() => void) | undefined;
  private failures = 0;
  private readonly loop: Promise<void>;
  private readonly abort = new AbortController();
  shipped = 0;

  constructor(private readonly options: ShipperOptions) {
    this.loop = this.run();
  }

  /** Call when lines were queued. */
  wake(): void {
    this.wakeUp?.();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    this.wake();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { queue } = this.options;
    while (!this.stopped) {
      if (queue.size() === 0) {
        await new Promise<void>((resolve) => {
          this.wakeUp = resolve;
        });
        this.wakeUp = undefined;
        continue;
      }
      await pause(this.options.lingerMs ?? 100, this.abort.signal);
      if (this.stopped) break;
      queue.flush();
      const lines = queue.take(this.options.batchLines ?? 1_000);
      try {
        await this.send(`${lines.join('\n')}\n`);
        queue.ack(lines.length);
        this.shipped += lines.length;
        this.failures = 0;
      } catch (error) {
        if (this.stopped) break;
        this.options.onError?.(error instanceof Error ? error : new Error(String(error)));
        const delay = jittered(
          Math.min(this.options.maxBackoffMs ?? 60_000, (this.options.baseBackoffMs ?? 1_000) * 2 ** this.failures),
        );
        this.failures = Math.min(this.failures + 1, 16);
        await pause(delay, this.abort.signal);
      }
    }
  }

  private async send(body: string): Promise<void> {
    const { apiEndpoint, uuid, deviceApiKey } = this.options;
    const answer = await httpExchange(new URL(path(DEVICE_ROUTES.logStream.path, { uuid }), apiEndpoint), {
      method: 'POST',
      headers: {
        authorization: `Bearer ${deviceApiKey}`,
        'content-type': 'application/x-ndjson',
        'content-encoding': 'gzip',
      },
      body: await gzip(body),
      signal: this.abort.signal,
      idleTimeoutMs: 30_000,
      maxBodyBytes: 64 * 1024,
      ca: this.options.ca,
    });
    if (answer.status < 200 || answer.status >= 300) throw new Error(`log stream answered ${answer.status}`);
  }
}
