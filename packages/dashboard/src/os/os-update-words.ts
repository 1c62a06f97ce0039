import type { Device } from '@flotilla/protocol';

type OsUpdate = NonNullable<Device['osUpdate']>;

/** What each phase of the agent's A/B update machine means to a person (agent/src/hostos/update-machine.ts). */
const PHASE_WORDS: Record<OsUpdate['phase'], string> = {
  idle: 'no update under way',
  writing: 'writing the image to the inactive slot',
  verifying: 'checking the written image',
  armed: 'written and checked; rebooting into it',
  trial: 'booted into it on trial',
  'rolling-back': 'rolling back to the previous OS',
  committed: 'committed',
  'rolled-back': 'rolled back',
  failed: 'failed',
};

/** The phases an update ends in: what the device says of its last update until it starts another. */
const RESULT_PHASES: ReadonlySet<OsUpdate['phase']> = new Set(['committed', 'rolled-back', 'failed']);

export interface OsUpdateWords {
  /** An update under way, in words (`writing the image… (OS 1.1.0)`); null when none is. */
  progressText: string | null;
  /** Percent written while `writing`; null otherwise. */
  percent: number | null;
  /** How the last update ended (`committed OS 1.1.0`, `rolled back from OS 1.1.0: <why> (<code>)`); null: none known. */
  result: string | null;
  /** Whether the result is a failure (rolled back or given up), to be shown as one. */
  failed: boolean;
}

/** A device's reported host OS update (`osUpdate`), as the device page says it. */
export function describeOsUpdate(update: Device['osUpdate']): OsUpdateWords {
  if (update === null || update.phase === 'idle')
    return { progressText: null, percent: null, result: null, failed: false };
  const os = update.version === null ? 'the new OS' : `OS ${update.version}`;
  if (!RESULT_PHASES.has(update.phase)) {
    const percent = update.phase === 'writing' && update.progress !== null ? Math.round(update.progress) : null;
    return { progressText: `${PHASE_WORDS[update.phase]} (${os})`, percent, result: null, failed: false };
  }
  if (update.phase === 'committed')
    return { progressText: null, percent: null, result: `committed ${os}`, failed: false };
  const code = update.errorCode ?? '';
  const why = update.error ? `${update.error}${code && ` (${code})`}` : code;
  const what = update.phase === 'rolled-back' ? `rolled back from ${os}` : `${os} failed`;
  return { progressText: null, percent: null, result: why ? `${what}: ${why}` : what, failed: true };
}
