import type { IncomingMessage } from 'node:http';
import type Docker from 'dockerode';
import { loadDockerode } from '../engine/docker-engine.js';
import { EngineLogSplitter, compareStamps, parseEngineStamp, sinceParameter } from './engine-log-stream.js';

export interface RawLogLine {
  /** The engine's timestamp of the line, as it wrote it (RFC 3339, nanoseconds): the resume position. */
  stamp: string;
  /** The same instant in epoch milliseconds. */
  timestampMs: number;
  message: string;
  isStdErr: boolean;
}

/** Reads one container's output. Narrow so the collector can be driven without an engine in unit tests. */
export interface LogSource {
  /** Streams lines stamped after `since` (an engine stamp) until the container stops or `signal` aborts. */
  follow(
    containerId: string,
    since: string | undefined,
    onLine: (line: RawLogLine) => void,
    signal: AbortSignal,
  ): Promise<void>;
}

export class DockerLogSource implements LogSource {
  private readonly docker: Docker;

  constructor(socketPath = '/var/run/docker.sock') {
    // WARNING: never `import Docker from 'dockerode'` as a value: the stubbing loader keeps ~20 MB off the device.
    const DockerClient = loadDockerode();
    this.docker = new DockerClient({ socketPath });
  }

  async follow(
    containerId: string,
    since: string | undefined,
    onLine: (line: RawLogLine) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const container = this.docker.getContainer(containerId);
    const info = await container.inspect();
    const after = since === undefined ? undefined : parseEngineStamp(since);
    // The engine's `since` is inclusive and second-granular on some versions: lines at or before `since` are
    // filtered here, so a re-attach never repeats a line.
    const stream = (await container.logs({
      follow: true,
      stdout: true,
      stderr: true,
      timestamps: true,
      since: (after ? sinceParameter(after) : 0) as number,
      abortSignal: signal,
    })) as unknown as IncomingMessage;
    const splitter = new EngineLogSplitter(info.Config.Tty, (text, isStdErr) => {
      const space = text.indexOf(' ');
      const end = space === -1 ? text.length : space;
      const stamp = parseEngineStamp(text, end);
      if (!stamp || (after && compareStamps(stamp, after) <= 0)) return;
      onLine({
        stamp: text.slice(0, end),
        timestampMs: stamp.secondMs + Math.floor(stamp.nanos / 1_000_000),
        message: space === -1 ? '' : text.slice(space + 1),
        isStdErr,
      });
    });
    await new Promise<void>((resolve) => {
      let finished = false;
      const finish = (lastLine: boolean) => {
        if (finished) return;
        finished = true;
        if (lastLine) splitter.end();
        resolve();
      };
      stream.on('data', (chunk: Buffer) => splitter.write(chunk));
      stream.on('end', () => finish(true));
      stream.on('close', () => finish(true));
      stream.on('error', () => finish(false));
      signal.addEventListener(
        'abort',
        () => {
          finish(false);
          stream.destroy();
        },
        { once: true },
      );
    });
  }
}
