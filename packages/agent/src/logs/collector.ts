import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { DeviceLogLine } from '@flotilla/protocol';
import { PRIVATE_FILE_MODE } from '../store/private-files.js';
import { pause } from '../util/wakeable.js';
import type { LogSource, RawLogLine } from './docker-log-source.js';
import { parseEngineStamp } from './engine-log-stream.js';

export interface LogTarget {
  containerId: string;
  serviceName: string;
  serviceId?: number;
}

/** Longest message kept per line; longer output is cut so one runaway line cannot fill the buffer. */
const MAX_MESSAGE_CHARS = 16 * 1024;

/**
 * Follows the output of every service container the agent runs and turns it into protocol log lines, plus the
 * agent's own system messages. Per-container positions (the engine stamp of the last line) are kept in a small JSON
 * file so that after an agent restart following resumes where it stopped: no line twice, none skipped.
 */
export class LogCollector {
  private readonly attached = new Map<string, AbortController>();
  /** Per container, the engine stamp of the last line taken. */
  private positions = new Map<string, string>();
  private positionsDirty = false;

  constructor(
    private readonly source: LogSource,
    private readonly sink: (line: DeviceLogLine) => void,
    private readonly positionsFile: string | undefined,
    private readonly now: () => number = Date.now,
    private readonly retryMs = 1_000,
  ) {
    if (positionsFile) this.positions = readPositions(positionsFile);
  }

  /** Follows exactly these containers from now on (level-based: call with the whole set after every pass). */
  sync(targets: readonly LogTarget[]): void {
    const wanted = new Map(targets.map((t) => [t.containerId, t]));
    for (const [id, controller] of this.attached) {
      if (!wanted.has(id)) {
        controller.abort();
        this.attached.delete(id);
        this.positions.delete(id);
        this.positionsDirty = true;
      }
    }
    for (const [id, target] of wanted) {
      if (this.attached.has(id)) continue;
      const controller = new AbortController();
      this.attached.set(id, controller);
      void this.followLoop(target, controller.signal);
    }
  }

  system(message: string): void {
    this.sink({ message, timestamp: this.now(), isSystem: true });
  }

  /** Writes positions if they moved (call periodically and at stop). */
  flush(): void {
    if (!this.positionsFile || !this.positionsDirty) return;
    const body = Object.fromEntries(this.positions);
    writeFileSync(`${this.positionsFile}.tmp`, JSON.stringify(body), { mode: PRIVATE_FILE_MODE });
    renameSync(`${this.positionsFile}.tmp`, this.positionsFile);
    this.positionsDirty = false;
  }

  stop(): void {
    for (const controller of this.attached.values()) controller.abort();
    this.attached.clear();
    this.flush();
  }

  /** A container's stream ends when it stops; its restart policy may start it again, so follow again. */
  private async followLoop(target: LogTarget, signal: AbortSignal): Promise<void> {
    const { containerId, serviceName, serviceId } = target;
    const onLine = (raw: RawLogLine) => {
      this.positions.set(containerId, raw.stamp);
      this.positionsDirty = true;
      const message =
        raw.message.length > MAX_MESSAGE_CHARS ? `${raw.message.slice(0, MAX_MESSAGE_CHARS)}…` : raw.message;
      const line: DeviceLogLine = { message, timestamp: raw.timestampMs, isStdErr: raw.isStdErr, serviceName };
      if (serviceId !== undefined) line.serviceId = serviceId;
      this.sink(line);
    };
    while (!signal.aborted) {
      try {
        await this.source.follow(containerId, this.positions.get(containerId), onLine, signal);
      } catch {
        // container gone or engine restarting: the next sync decides whether to keep following
      }
      await pause(this.retryMs, signal);
    }
  }
}

/** Positions as saved: engine stamps per container; nanosecond counts (the earlier format) are converted. */
function readPositions(file: string): Map<string, string> {
  try {
    const raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    const out = new Map<string, string>();
    for (const [id, value] of Object.entries(raw)) {
      if (typeof value !== 'string') continue;
      if (/^\d{1,30}$/.test(value)) out.set(id, stampOfNanoseconds(BigInt(value)));
      else if (parseEngineStamp(value)) out.set(id, value);
    }
    return out;
  } catch {
    return new Map();
  }
}

function stampOfNanoseconds(ns: bigint): string {
  const second = new Date(Number(ns / 1_000_000_000n) * 1000).toISOString().slice(0, 19);
  return `${second}.${String(ns % 1_000_000_000n).padStart(9, '0')}Z`;
}
