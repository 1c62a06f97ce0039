import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { access, mkdir, open, readdir, rm, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DELTA_SOURCE_WINDOW_BYTES,
  FlotillaError,
  type OsDeltaDescriptor,
  type OsDeltaRequest,
} from '@flotilla/protocol';
import type { Logger } from 'pino';
import { verifyDeltaFile } from '../deltas/apply-delta.js';
import { type DeltaEndpoint, deltaDownload, xdelta3Runs } from '../deltas/delta-client.js';
import { PRIVATE_DIR_MODE } from '../store/private-files.js';
import { downloadResuming } from '../util/resumable-download.js';
import type { ImageBytes } from './image-source.js';
import { askOsDelta } from './os-delta-client.js';
import type { OsTarget } from './update-machine.js';

const CHUNK = 1 << 20;

export interface OsDeltaOptions {
  endpoint: DeltaEndpoint;
  /** The agent's data folder: the delta and the source copy live in `<dataDir>/os-deltas/` (a restart resumes). */
  dataDir: string;
  log: Logger;
  /** How long a delta may stay pending on the server before the full image is downloaded. Default 2 minutes. */
  pendingLimitMs?: number;
  /** Fruitless download attempts in a row (each resumes) before the full image is downloaded instead. Default 5. */
  downloadAttempts?: number;
  /** Config var SUPERVISOR_DELTA, as for app deltas: `0` and OS images are downloaded whole. Default: on. */
  enabled?: () => boolean;
}

/** What the booted slot holds, as far as the device knows: the image it wrote itself, else os-release's version. */
export interface BootedOs {
  device: string;
  sha256?: string | undefined;
  version?: string | undefined;
}

/** An image decoded from a delta, and the delta's bytes this open downloaded (resumed parts counted once). */
export interface DeltaImage {
  bytes: ImageBytes;
  downloaded: number;
  deltaSize: number;
}

/**
 * The device side of OS updates by delta (protocol os-deltas.ts). `open` asks for the delta from the booted OS,
 * copies the booted slot's source bytes into a regular file while hashing them (they must hash to the source the
 * server named), downloads the delta (resuming), checks its digest, and returns xdelta3's decoding as the image's
 * bytes from `from` (what precedes is decoded and skipped: decoding is local). Undefined when there is nothing to ask
 * from or the delta was refused for this target; it rejects on anything else, and the caller downloads the full image.
 * WARNING: xdelta3 reads a block device as a non-seekable source and fails ("non-seekable source in decode") on a
 * copy from before its window (DELTA_SOURCE_WINDOW_BYTES), so the source is copied to a regular file first: it costs
 * the source image's size on the data partition for the write's length, and one read of the booted slot, which the
 * source check needs anyway.
 */
export class OsDelta {
  private tool: Promise<boolean> | undefined;

  constructor(private readonly o: OsDeltaOptions) {}

  private get dir(): string {
    return join(this.o.dataDir, 'os-deltas');
  }

  private refusedFile(targetSha256: string): string {
    return join(this.dir, `refused-${targetSha256}`);
  }

  async open(target: OsTarget, booted: BootedOs, from: number, signal: AbortSignal): Promise<DeltaImage | undefined> {
    const ask: OsDeltaRequest | undefined = booted.sha256
      ? { fromSha256: booted.sha256, toSha256: target.sha256 }
      : booted.version
        ? { fromVersion: booted.version, toSha256: target.sha256 }
        : undefined;
    if (!ask || booted.sha256 === target.sha256 || this.o.enabled?.() === false) return undefined;
    if (await exists(this.refusedFile(target.sha256))) return undefined;
    if (!(await this.xdelta3())) {
      this.o.log.warn('xdelta3 is not installed: OS images are downloaded whole');
      return undefined;
    }
    const delta = await this.ask(ask, signal);
    if (!delta) throw new FlotillaError('DELTA_UNAVAILABLE', 'the OS delta was not ready in time');
    if (delta.targetSha256 !== target.sha256 || delta.targetSize !== target.size)
      throw new FlotillaError('UNEXPECTED_RESPONSE', 'the OS delta is for another image');
    await mkdir(this.dir, { recursive: true, mode: PRIVATE_DIR_MODE });
    await this.dropOthers(delta);
    const { bavail, bsize } = await statfs(this.dir);
    if (bavail * bsize < delta.sourceSize + delta.size + 64 * CHUNK)
      throw new FlotillaError('INSUFFICIENT_DISK', `no room in ${this.dir} for the OS delta and its source`);
    const source = join(this.dir, 'source.img');
    if ((await copyPrefix(booted.device, delta.sourceSize, source)) !== delta.sourceSha256) {
      await this.refuse(target.sha256);
      throw new FlotillaError('DELTA_UNAVAILABLE', `${booted.device} does not hold the delta's source image`);
    }
    const file = join(this.dir, `${delta.digest.slice('sha256:'.length)}.delta`);
    // Made private before the download appends to it (the data folder's files are 0600, agent.ts tightens them).
    await (await open(file, 'a', 0o600)).close();
    const downloaded = await downloadResuming(
      deltaDownload(this.o.endpoint, delta.path, file, delta.size, signal, undefined, 'OS delta download'),
      this.o.downloadAttempts ?? 5,
      this.o.log,
    );
    await verifyDeltaFile(file, delta);
    return {
      bytes: { stream: Readable.from(decode(source, file, from, signal)), start: from },
      downloaded,
      deltaSize: delta.size,
    };
  }

  /** The delta did not give the image: this target is downloaded whole from now on (the mark survives restarts). */
  async refuse(targetSha256: string): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: PRIVATE_DIR_MODE });
    await writeFile(this.refusedFile(targetSha256), '', { mode: 0o600 });
    await this.clear();
  }

  /** Removes the delta and the source copy (a write is done with them), keeping refusals. */
  async clear(): Promise<void> {
    for (const name of await readdir(this.dir).catch(() => [] as string[]))
      if (!name.startsWith('refused-')) await rm(join(this.dir, name), { force: true });
  }

  /** Another target's delta (an update superseded) is of no use: only this one's partial file is kept. */
  private async dropOthers(delta: OsDeltaDescriptor): Promise<void> {
    const keep = `${delta.digest.slice('sha256:'.length)}.delta`;
    for (const name of await readdir(this.dir).catch(() => [] as string[]))
      if (name.endsWith('.delta') && name !== keep) await rm(join(this.dir, name), { force: true });
  }

  private async ask(ask: OsDeltaRequest, signal: AbortSignal): Promise<OsDeltaDescriptor | undefined> {
    const deadline = Date.now() + (this.o.pendingLimitMs ?? 120_000);
    for (;;) {
      const answer = await askOsDelta(this.o.endpoint, ask, signal);
      if (answer.status === 'ready') return answer.delta;
      const wait = Math.min(answer.retryAfterMs, deadline - Date.now());
      if (wait <= 0) return undefined;
      await sleep(wait, undefined, { signal });
    }
  }

  /** Whether xdelta3 runs here; asked once. */
  private xdelta3(): Promise<boolean> {
    this.tool ??= xdelta3Runs();
    return this.tool;
  }
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

/** Copies the first `size` bytes of `device` to `out` (a regular file), returning their hex sha256. */
async function copyPrefix(device: string, size: number, out: string): Promise<string> {
  const hash = createHash('sha256');
  const input = await open(device, 'r');
  const output = await open(out, 'w', 0o600);
  try {
    const buffer = Buffer.allocUnsafe(CHUNK);
    for (let at = 0; at < size; ) {
      const { bytesRead } = await input.read(buffer, 0, Math.min(CHUNK, size - at), at);
      if (bytesRead === 0) return 'short';
      hash.update(buffer.subarray(0, bytesRead));
      for (let done = 0; done < bytesRead; ) done += (await output.write(buffer, done, bytesRead - done)).bytesWritten;
      at += bytesRead;
    }
  } finally {
    await Promise.all([input.close(), output.close()]);
  }
  return hash.digest('hex');
}

/**
 * xdelta3's decoding of `delta` against `source`, from byte `from` on. A decoder that fails (a corrupt delta: its
 * windows carry checksums) ends the stream with DELTA_INVALID; the slot writer's digest check catches anything else.
 */
export async function* decode(
  source: string,
  delta: string,
  from: number,
  signal: AbortSignal,
): AsyncGenerator<Buffer> {
  const child = spawn('xdelta3', ['-d', '-c', '-B', String(DELTA_SOURCE_WINDOW_BYTES), '-s', source, delta], {
    stdio: ['ignore', 'pipe', 'pipe'],
    signal,
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    if (stderr.length < 2000) stderr += chunk.toString('utf8');
  });
  const exited = new Promise<number | null>((resolve) => {
    child.on('error', () => resolve(null));
    child.on('close', (code) => resolve(code));
  });
  let skip = from;
  try {
    for await (const chunk of child.stdout) {
      const bytes = chunk as Buffer;
      if (skip >= bytes.length) {
        skip -= bytes.length;
        continue;
      }
      yield skip > 0 ? bytes.subarray(skip) : bytes;
      skip = 0;
    }
    const code = await exited;
    if (code !== 0) throw new FlotillaError('DELTA_INVALID', `xdelta3 could not decode the OS delta: ${stderr.trim()}`);
  } finally {
    if (child.exitCode === null) child.kill();
  }
}
