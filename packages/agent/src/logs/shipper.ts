import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { createGzip } from 'node:zlib';
import { DEVICE_ROUTES, path } from '@flotilla/protocol';
import type { LogQueue } from './log-queue.js';

export interface ShipperOptions {
  apiEndpoint: string;
  uuid: string;
  deviceApiKey: string;
  queue: LogQueue;
  /** Most lines in one request. */
  batchLines?: number;
  /** How long to gather lines after the first one before sending (fewer, fuller requests). */
  lingerMs?: number;
  /** Backoff after a failed request: min(maxBackoffMs, baseBackoffMs · 2^n). */
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
      await sleep(this.options.lingerMs ?? 100, undefined, { signal: this.abort.signal }).catch(() => undefined);
      if (this.stopped) break;
      queue.flush();
      const lines = queue.take(this.options.batchLines ?? 1_000);
      try {
        await this.send(lines.map((line) => JSON.stringify(line)).join('\n') + '\n');
        queue.ack(lines.length);
        this.shipped += lines.length;
        this.failures = 0;
      } catch (error) {
        if (this.stopped) break;
        this.options.onError?.(error instanceof Error ? error : new Error(String(error)));
        const delay = Math.min(this.options.maxBackoffMs ?? 60_000, (this.options.baseBackoffMs ?? 1_000) * 2 ** this.failures);
        this.failures = Math.min(this.failures + 1, 16);
        await sleep(delay, undefined, { signal: this.abort.signal }).catch(() => undefined);
      }
    }
  }

  private send(body: string): Promise<void> {
    const { apiEndpoint, uuid, deviceApiKey } = this.options;
    const url = new URL(path(DEVICE_ROUTES.logStream.path, { uuid }), apiEndpoint);
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request(url, {
        method: 'POST',
        signal: this.abort.signal,
        timeout: 30_000,
        headers: {
          authorization: `Bearer ${deviceApiKey}`,
          'content-type': 'application/x-ndjson',
          'content-encoding': 'gzip',
        },
      });
      req.on('timeout', () => req.destroy(new Error('log stream request timed out')));
      req.on('error', reject);
      req.on('response', (response: IncomingMessage) => {
        response.resume();
        response.on('end', () => {
          const status = response.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve();
          else reject(new Error(`log stream answered ${status}`));
        });
        response.on('error', reject);
      });
      const gzip = createGzip();
      gzip.on('error', reject);
      gzip.pipe(req);
      gzip.end(body);
    });
  }
}
