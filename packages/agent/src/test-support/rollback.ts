import { randomBytes } from 'node:crypto';
import type { DeviceRollback } from '@flotilla/protocol';
import { ensureBusyboxImage, run } from '@flotilla/testkit';
import { exec, localImage, ourContainers, reportedApp, serviceOf, type Harness } from './fixtures.js';

/** Soak time the rollback tests give a release that runs well (config var), in seconds: each one waits it out. */
export const TEST_SOAK_SECONDS = 3;
/**
 * Soak time for a release that fails: a failure ends the watch as soon as it is seen, so this costs nothing, and it
 * leaves a loaded machine (slow container starts, the engine's restart back-off) room to reach the crash-loop count.
 */
export const FAILING_SOAK_SECONDS = 20;

/** A release image FROM the local busybox whose container runs `script` (sh -c), with /release = `marker`. */
export async function buildScriptImage(tag: string, marker: string, script: string): Promise<string> {
  const base = await ensureBusyboxImage();
  const dockerfile = [
    `FROM ${base}`,
    `RUN echo ${marker} > /release && echo ${randomBytes(8).toString('hex')} > /.nonce`,
    `CMD ["sh", "-c", ${JSON.stringify(script)}]`,
  ].join('\n');
  await run('docker', ['build', '-q', '-t', tag, '-'], { input: dockerfile });
  return tag;
}

/** Runs until stopped (exits at once on SIGTERM). */
export const RUNS_WELL = `trap 'exit 0' TERM; echo up; while true; do sleep 0.2; done`;
/** Says why on both outputs, then exits 3: restarted by the default policy, a crash loop. */
export const CRASHES = `echo 'starting release 2'; echo 'fatal: cannot open /etc/app.conf' >&2; exit 3`;

/** The fleet's soak time (config var, as a user would set it). */
export async function setSoak(h: Harness, seconds: number): Promise<void> {
  await h.cp.api('POST', `/api/v1/fleets/${h.cp.fleet.slug}/config`, {
    name: 'FLOTILLA_ROLLBACK_SOAK_SECONDS',
    value: String(seconds),
  });
}

/** The one container of service `main`, running, whose /release says `marker`. */
export function mainRuns(h: Harness, marker: string) {
  return async (): Promise<boolean> => {
    const main = (await ourContainers(h.namespace)).filter((c) => serviceOf(c) === 'main');
    if (main.length !== 1 || main[0]?.State !== 'running') return false;
    return (await exec(main[0].Id, 'cat /release').catch(() => '')).trim() === marker;
  };
}

/** A container of service `main` runs (or restarts, or exited) from image `ref`: the release was applied. */
export function mainOn(h: Harness, ref: string) {
  return async (): Promise<boolean> =>
    (await ourContainers(h.namespace)).some((c) => serviceOf(c) === 'main' && c.Image === ref);
}

/** The rollback the device last reported, as the server accepted it (undefined: not reported yet). */
export function reportedRollback(h: Harness, uuid: string): DeviceRollback | null | undefined {
  return h.cp.tap.state.get(uuid)?.rollback;
}

/** The device reported it refuses `from` after rolling back to `to`, and runs `to`. */
export function reportedRolledBack(h: Harness, uuid: string, from: string, to: string): boolean {
  const rollback = reportedRollback(h, uuid);
  const app = reportedApp(h, uuid);
  return (
    rollback?.from_commit === from &&
    rollback.to_commit === to &&
    h.cp.tap.state.get(uuid)?.update_failed === true &&
    app?.release_uuid === to &&
    app.releases[from]?.update_status === 'aborted'
  );
}

export async function imagePresent(ref: string): Promise<boolean> {
  return (await localImage(ref)) !== undefined;
}

/** Image refs (release markers) of the containers of the test's namespace, e.g. to see a release never came back. */
export async function containerImages(h: Harness): Promise<string[]> {
  return (await ourContainers(h.namespace)).map((c) => c.Image);
}
