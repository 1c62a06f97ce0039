import { PassThrough, type Readable } from 'node:stream';
import { createInterface } from 'node:readline';
import type Docker from 'dockerode';
import { loadDockerode } from '../engine/docker-engine.js';

export interface RawLogLine {
  /** Nanoseconds since the epoch, as the engine stamped the line. */
  timestampNs: bigint;
  message: string;
  isStdErr: boolean;
}

/** Reads one container's output. Narrow so the collector can be driven without an engine in unit tests. */
export interface LogSource {
  /** Streams lines stamped after `sinceNs` until the container stops or `signal` aborts. */
  follow(containerId: string, sinceNs: bigint | undefined, onLine: (line: RawLogLine) => void, signal: AbortSignal): Promise<void>;
}

/** `2026-11-23T08:40:01.123456789Z` (RFC 3339, nanoseconds, trailing zeros trimmed) → ns since the epoch. */
export function parseEngineTimestamp(text: string): bigint | undefined {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z$/.exec(text);
  if (!m) return undefined;
  const seconds = Date.parse(`${m[1]}Z`);
  if (Number.isNaN(seconds)) return undefined;
  return BigInt(seconds) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
}

/** Splits `<timestamp> <message>` as the engine writes it with timestamps on. */
export function splitStampedLine(text: string): { timestampNs: bigint; message: string } | undefined {
  const space = text.indexOf(' ');
  const stamp = parseEngineTimestamp(space === -1 ? text : text.slice(0, space));
  if (stamp === undefined) return undefined;
  return { timestampNs: stamp, message: space === -1 ? '' : text.slice(space + 1) };
}

export class DockerLogSource implements LogSource {
  private readonly docker: Docker;

  constructor(socketPath = '/var/run/docker.sock') {
    // WARNING: never `import Docker from 'dockerode'` as a value: the stubbing loader keeps ~20 MB off the device.
    const DockerClient = loadDockerode();
    this.docker = new DockerClient({ socketPath });
  }

  async follow(containerId: string, sinceNs: bigint | undefined, onLine: (line: RawLogLine) => void, signal: AbortSignal): Promise<void> {
    const container = this.docker.getContainer(containerId);
    const info = await container.inspect();
    const since = sinceNs === undefined ? 0 : `${sinceNs / 1_000_000_000n}.${String(sinceNs % 1_000_000_000n).padStart(9, '0')}`;
    // The engine's `since` is inclusive and second-granular on some versions: lines at or before sinceNs are
    // filtered here, so a re-attach never repeats a line.
    const stream = (await container.logs({ follow: true, stdout: true, stderr: true, timestamps: true, since: since as number, abortSignal: signal })) as unknown as Readable;
    const done = new Promise<void>((resolve) => {
      stream.on('end', resolve);
      stream.on('close', resolve);
      stream.on('error', () => resolve());
      signal.addEventListener('abort', () => {
        stream.destroy();
        resolve();
      }, { once: true });
    });
    const emit = (isStdErr: boolean) => (text: string) => {
      const stamped = splitStampedLine(text);
      if (!stamped || (sinceNs !== undefined && stamped.timestampNs <= sinceNs)) return;
      onLine({ ...stamped, isStdErr });
    };
    if (info.Config.Tty) {
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', emit(false));
    } else {
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      this.docker.modem.demuxStream(stream, stdout, stderr);
      stream.on('end', () => {
        stdout.end();
        stderr.end();
      });
      createInterface({ input: stdout, crlfDelay: Infinity }).on('line', emit(false));
      createInterface({ input: stderr, crlfDelay: Infinity }).on('line', emit(true));
    }
    await done;
  }
}
