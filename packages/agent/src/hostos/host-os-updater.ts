import { readFile } from 'node:fs/promises';
import { FlotillaError, isErrorCode, type ErrorCode } from '@flotilla/protocol';
import type { Logger } from 'pino';
import { z } from 'zod';
import { writeFileAtomic } from '../config/atomic-write.js';
import type { Bootloader } from './bootloader.js';
import { awaitHealthy, type HealthCheck } from './health.js';
import type { HostOsConfig, Slot } from './host-os-config.js';
import type { OpenImage } from './image-source.js';
import type { OsDelta } from './os-delta.js';
import { verifySlot, writeSlot } from './slot-writer.js';
import { clearCheckpoint } from './write-checkpoint.js';
import { IDLE, inProgress, transition, type OsTarget, type UpdateEvent, type UpdateState } from './update-machine.js';

export const osTargetSchema = z.strictObject({
  version: z.string().min(1).max(200),
  url: z.string().regex(/^(file|https?):\/\//, 'a file:, http: or https: URL'),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'a hex sha256'),
  size: z.number().int().positive(),
});

export interface HostOsUpdaterOptions {
  config: HostOsConfig;
  bootloader: Bootloader;
  /** The slot this boot started (select-bootloader.ts `bootedSlot`). */
  booted: Slot;
  /** The persisted state (JSON, replaced atomically); on the data partition both slots share. */
  stateFile: string;
  /**
   * Where the slot write records its durable progress (write-checkpoint.ts), so a write cut by a restart or a power
   * cut resumes; without it every write starts at byte 0.
   */
  checkpointFile?: string;
  openImage: OpenImage;
  /** Managed devices: the image by delta from the booted OS when the server has one (os-delta.ts). */
  osDelta?: OsDelta | undefined;
  /** The booted OS's version (os-release VERSION_ID): what a delta is asked from when the updater did not write it. */
  runningVersion?: string | undefined;
  /** The trial boot's checks; all must pass together within config.trialHealthTimeoutSeconds. */
  healthChecks: HealthCheck[];
  reboot: () => Promise<void>;
  log: Logger;
  onProgress?: (percent: number) => void;
  onChange?: (state: UpdateState) => void;
  /** How long after a failed write the next attempt begins (default 30 s): a link or a disk may come back. */
  retryDelayMs?: number;
  /** Tests: overrides config.trialHealthTimeoutSeconds. */
  healthTimeoutMs?: number;
  healthIntervalMs?: number;
}

/**
 * The device side of an A/B host OS update. `resume()` once at agent start (it reads where this boot landed and
 * carries the persisted update on: retry a cut write, check the trial boot's health and commit, or record the
 * rollback); `start(target)` when the control plane asks for an OS. Both resolve when the update rests: waiting for
 * the reboot it asked for, committed, rolled back or failed. State changes are persisted before what follows them.
 */
export class HostOsUpdater {
  private running: Promise<UpdateState> | undefined;

  private constructor(
    private readonly o: HostOsUpdaterOptions,
    private current: UpdateState,
  ) {}

  static async open(options: HostOsUpdaterOptions): Promise<HostOsUpdater> {
    return new HostOsUpdater(options, await readState(options.stateFile, options.log));
  }

  state(): UpdateState {
    return this.current;
  }

  resume(): Promise<UpdateState> {
    return this.exclusive(() => this.carryOn());
  }

  /** Refuses OS_UPDATE_IN_PROGRESS while another target's update runs; the same target again is a no-op. */
  start(input: OsTarget): Promise<UpdateState> {
    const parsed = osTargetSchema.safeParse(input);
    if (!parsed.success)
      return Promise.reject(new FlotillaError('VALIDATION_FAILED', `OS target: ${parsed.error.issues[0]?.message}`));
    const target = parsed.data;
    const s = this.current;
    const same = s.target?.sha256 === target.sha256;
    if (same && (inProgress(s.phase) || (s.phase === 'committed' && this.o.booted === s.toSlot)))
      return this.running ?? Promise.resolve(s);
    if (inProgress(s.phase) || this.running)
      return Promise.reject(
        new FlotillaError('OS_UPDATE_IN_PROGRESS', `OS ${s.target?.version} is being installed (${s.phase})`),
      );
    return this.exclusive(async () => {
      // The image this updater committed and booted: a delta's source known by its digest, not just its version.
      if (s.phase === 'committed' && s.toSlot === this.o.booted && s.target) this.bootedImage = s.target.sha256;
      await this.send({ type: 'start', target, booted: this.o.booted });
      return this.carryOn();
    });
  }

  private async exclusive(work: () => Promise<UpdateState>): Promise<UpdateState> {
    if (this.running) return this.running;
    this.running = work().finally(() => (this.running = undefined));
    return this.running;
  }

  /**
   * Does what the phase calls for, until the update rests. A state read from disk (this boot's first look) is first
   * told where the boot landed (boot-old / boot-new); a state this process reached is acted on directly.
   */
  private async carryOn(): Promise<UpdateState> {
    for (;;) {
      const s = this.current;
      const onNew = this.o.booted === s.toSlot;
      const found = this.fromDisk;
      switch (s.phase) {
        case 'writing':
        case 'verifying':
          if (!found) await this.writeOrVerify(s);
          else if (onNew) await this.send({ type: 'boot-new' });
          // Power cut or crash mid-write: the same write goes on from its checkpoint (restarts + 1, not attempts).
          else await this.send({ type: 'boot-old' });
          break;
        case 'armed':
          if (!found) return this.rebootNow(s);
          if (onNew) await this.send({ type: 'boot-new' });
          // Stopped after arming but before the reboot: the trial is still armed.
          else if ((await this.o.bootloader.read()).trial === s.toSlot) return this.rebootNow(s);
          else await this.send({ type: 'boot-old' });
          break;
        case 'trial':
          if (onNew) await this.checkTrial(s);
          else await this.send({ type: 'boot-old' });
          break;
        case 'rolling-back':
          if (!found) return this.rebootNow(s);
          if (!onNew) {
            await this.send({ type: 'boot-old' });
            break;
          }
          // The reboot back did not happen (the agent stopped first): call the trial off again and reboot.
          await this.o.bootloader.commit(s.fromSlot as Slot);
          return this.rebootNow(s);
        default:
          return s;
      }
    }
  }

  /** True until this process moves the state on: what is in `current` was read from disk at open. */
  private fromDisk = true;
  /** The booted slot's image sha256 when this process knows it (see `start`). */
  private bootedImage: string | undefined;

  /**
   * Writes the target's image to the slot: by delta when one can be had, else (or when the delta fails in any way,
   * its decoding included) the full image, in the same attempt: a delta never costs an update its attempts.
   */
  private async write(target: OsTarget, device: string, signal: AbortSignal): Promise<void> {
    const { osDelta, log } = this.o;
    const full = (from: number) => this.o.openImage(target.url, signal, from);
    const common = {
      device,
      sha256: target.sha256,
      size: target.size,
      checkpoint: this.o.checkpointFile,
      onProgress: this.o.onProgress,
      log,
      signal,
    };
    if (!osDelta) {
      await writeSlot({ ...common, open: full });
      return;
    }
    let used: { downloaded: number; deltaSize: number } | undefined;
    const booted = {
      device: this.o.config.slots[this.o.booted],
      sha256: this.bootedImage,
      version: this.o.runningVersion,
    };
    const open = async (from: number) => {
      try {
        const found = await osDelta.open(target, booted, from, signal);
        if (found) {
          used = found;
          log.info({ from, deltaBytes: found.deltaSize, downloadedNow: found.downloaded }, 'host OS: writing by delta');
          return found.bytes;
        }
      } catch (error) {
        if (signal.aborted) throw error;
        log.warn({ err: (error as Error).message }, 'host OS: no delta; downloading the full image');
      }
      return full(from);
    };
    try {
      await writeSlot({ ...common, open });
    } catch (error) {
      if (!used || signal.aborted) throw error;
      log.warn({ err: (error as Error).message }, 'host OS: the delta did not give the image; writing the full image');
      // What the delta wrote is not trusted: the full image starts from byte 0.
      await osDelta.refuse(target.sha256);
      await this.dropCheckpoint();
      used = undefined;
      await writeSlot({ ...common, open: full });
    }
    const downloaded = used ? `${used.downloaded} bytes of delta` : 'the full image';
    log.info(
      { version: target.version, size: target.size, byDelta: used !== undefined },
      `host OS: written (${downloaded})`,
    );
    await osDelta.clear().catch(() => undefined);
  }

  private async writeOrVerify(s: UpdateState): Promise<void> {
    const target = s.target as OsTarget;
    const device = this.o.config.slots[s.toSlot as Slot];
    try {
      if (s.phase === 'writing') {
        // A trial armed by an earlier attempt must not boot the slot while it is being overwritten.
        const env = await this.o.bootloader.read();
        if (env.trial === s.toSlot) await this.o.bootloader.commit(env.committed);
        this.o.log.info(
          { version: target.version, device, attempt: s.attempts, restarts: s.restarts },
          'host OS: writing the inactive slot',
        );
        await this.write(target, device, AbortSignal.timeout(24 * 3600_000));
        await this.send({ type: 'written' });
        return;
      }
      await verifySlot(device, target.size, target.sha256);
      // Armed before 'armed' is stored: a stop between the two boots the verified slot, which 'verifying' accepts.
      await this.o.bootloader.armTrial(s.toSlot as Slot);
      await this.send({ type: 'verified' });
      // Kept until now: a stop while verifying writes again, and the checkpoint makes that a local read, no download.
      await this.dropCheckpoint();
    } catch (error) {
      // Any failure here ends this update as 'failed' (a new start retries it), never a state left half-way: a
      // process that went on running would refuse every later start as OS_UPDATE_IN_PROGRESS.
      const why =
        error instanceof FlotillaError
          ? reason(error.code, error.message)
          : reason('INTERNAL', `host OS update: ${(error as Error).message}`);
      if (s.phase === 'verifying') {
        // armTrial may have failed half-way: the slot must not be booted while 'failed'. Best effort: the one-shot
        // rule brings a stray trial back anyway.
        await this.o.bootloader.commit(s.fromSlot as Slot).catch(() => undefined);
        // The slot did not read back right: the next write must download it all again, not trust what is there.
        await this.dropCheckpoint();
      }
      await this.send({ type: 'refused', reason: why });
      const again = this.current.phase === 'writing';
      this.o.log.warn(
        { code: why.code, attempt: s.attempts },
        `host OS: write ${again ? 'failed, writing again' : 'refused, update failed'}: ${why.message}`,
      );
      if (again) await sleepUnref(this.o.retryDelayMs ?? 30_000);
    }
  }

  /** Best effort: a checkpoint left behind is checked against the slot before any use anyway. */
  private async dropCheckpoint(): Promise<void> {
    if (this.o.checkpointFile) await clearCheckpoint(this.o.checkpointFile).catch(() => undefined);
  }

  private async checkTrial(s: UpdateState): Promise<void> {
    const timeoutMs = this.o.healthTimeoutMs ?? this.o.config.trialHealthTimeoutSeconds * 1000;
    const failure = await awaitHealthy(this.o.healthChecks, timeoutMs, this.o.healthIntervalMs);
    if (failure === null) {
      // Bootloader first: a stop between the two finds 'trial' on the new slot again and commits again (idempotent).
      await this.o.bootloader.commit(s.toSlot as Slot);
      await this.send({ type: 'healthy' });
      this.o.log.info({ version: s.target?.version, slot: s.toSlot }, 'host OS: committed');
      return;
    }
    // The reason first, then the bootloader: a stop between the two finds 'rolling-back' and calls the trial off.
    await this.send({ type: 'unhealthy', reason: reason('OS_TRIAL_UNHEALTHY', failure) });
    await this.o.bootloader.commit(s.fromSlot as Slot);
    this.o.log.warn({ version: s.target?.version }, `host OS: rolling back: ${failure}`);
  }

  private async rebootNow(s: UpdateState): Promise<UpdateState> {
    this.o.log.info({ phase: s.phase }, 'host OS: rebooting');
    await this.o.reboot();
    return s;
  }

  private async send(event: UpdateEvent): Promise<void> {
    const result = transition(this.current, event);
    if (!result.ok)
      throw new FlotillaError('INTERNAL', `host OS update: '${result.event}' is not expected in '${result.phase}'`);
    await writeFileAtomic(this.o.stateFile, `${JSON.stringify(result.state)}\n`);
    this.current = result.state;
    this.fromDisk = false;
    this.o.onChange?.(result.state);
  }
}

function reason(code: ErrorCode, message: string) {
  return { code, message };
}

/**
 * Does not hold the process up: an agent stopping meanwhile finds 'writing' at its next start and goes on (a running
 * agent keeps its loop alive with its own sockets and timers).
 */
function sleepUnref(ms: number): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

const slotSchema = z.enum(['a', 'b']).nullable();
const stateSchema = z.object({
  phase: z.enum([
    'idle',
    'writing',
    'verifying',
    'armed',
    'trial',
    'rolling-back',
    'committed',
    'rolled-back',
    'failed',
  ]),
  target: osTargetSchema.nullable(),
  fromSlot: slotSchema,
  toSlot: slotSchema,
  attempts: z.number().int().min(0),
  // A file written before restarts were counted apart has none.
  restarts: z.number().int().min(0).default(0),
  reason: z.object({ code: z.string().refine(isErrorCode), message: z.string() }).nullable(),
});

/**
 * The persisted state. One that cannot be read as one (a foreign or hand-edited file) counts as idle, logged: the
 * bootloader's one-shot rule still returns an uncommitted trial to the old slot, so nothing unsafe follows.
 */
async function readState(file: string, log: Logger): Promise<UpdateState> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return IDLE;
    throw error;
  }
  let parsed: ReturnType<typeof stateSchema.safeParse> | undefined;
  try {
    parsed = stateSchema.safeParse(JSON.parse(text));
  } catch {
    parsed = undefined;
  }
  if (parsed?.success) return parsed.data as UpdateState;
  log.warn({ file }, 'host OS: the update state file is unreadable; starting from idle');
  return IDLE;
}
