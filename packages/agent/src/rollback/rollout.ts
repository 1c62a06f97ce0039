import { z } from 'zod';
import { deviceRollbackSchema, targetAppSchema, type DeviceRollback, type TargetDevice } from '@flotilla/protocol';

/**
 * What self-rollback remembers per app (by app uuid), persisted in one store record so a kill -9 at any instant
 * leaves a state the agent resumes from:
 * - `committed`: the last release that passed its soak (or that the device already ran when it had nothing to go
 *   back to), as the target gave it. What the device returns to; its images are kept.
 * - `soaking`: the release being watched since `since` (epoch ms, wall clock, so the soak survives a restart), with
 *   the app as the target gave it (absent in records stored before it was kept).
 * - `refused`: a release the device rolled back from; the agent runs the committed release instead until the target
 *   names another release or an update is forced.
 */
const rolloutSchema = z.object({
  committed: z.record(z.string(), z.object({ commit: z.string(), app: targetAppSchema })),
  soaking: z.record(z.string(), z.object({ commit: z.string(), since: z.number(), app: targetAppSchema.optional() })),
  refused: z.record(z.string(), deviceRollbackSchema),
});
export type Rollout = z.infer<typeof rolloutSchema>;

export const EMPTY_ROLLOUT: Rollout = { committed: {}, soaking: {}, refused: {} };

/** The stored record, or undefined when there is none or it does not read as one. */
export function parseRollout(value: unknown): Rollout | undefined {
  const parsed = rolloutSchema.safeParse(value);
  return parsed.success ? parsed.data : undefined;
}

type WireApp = TargetDevice['apps'][string];

/** The release commit a target app names. INVARIANT: the same choice as compose/target-model.ts (first sorted key). */
export function targetCommit(app: WireApp): string | null {
  return Object.keys(app.releases).sort()[0] ?? null;
}

/**
 * Pure: the device as the agent applies it. An app whose target names the release it refuses runs its committed
 * release instead (its services, volumes and networks as they were committed); everything else is the target.
 */
export function effectiveDevice(device: TargetDevice, rollout: Rollout): TargetDevice {
  let apps: Record<string, WireApp> | undefined;
  for (const [appUuid, refused] of Object.entries(rollout.refused)) {
    const app = device.apps[appUuid];
    const committed = rollout.committed[appUuid];
    if (!app || !committed || targetCommit(app) !== refused.from_commit) continue;
    apps ??= { ...device.apps };
    apps[appUuid] = { ...app, releases: committed.app.releases };
  }
  return apps ? { ...device, apps } : device;
}

/** Pure: the release of `app` named `commit`, alone, as committed. */
export function committedApp(app: WireApp, commit: string): Rollout['committed'][string] {
  const release = app.releases[commit];
  return { commit, app: { ...app, releases: release ? { [commit]: release } : {} } };
}

/**
 * Pure: forgets what no longer applies. A refusal ends when the target names another release (a new release, a
 * pin) or the app leaves the target; a soak ends when its release is no longer the target's; a committed release
 * of an app that left the target is dropped (its images may go).
 * A release replaced during its soak with no failure seen (a failure would have refused it) becomes the committed
 * one: it is the release the device ran last, the one the fleet's other devices run, and the one a staged rollout
 * stages the next release from, so a failing next release goes back to it rather than to an older one.
 */
export function forgetStale(rollout: Rollout, device: TargetDevice): Rollout {
  const commitOf = (appUuid: string): string | null | undefined => {
    const app = device.apps[appUuid];
    return app ? targetCommit(app) : undefined;
  };
  const keep = <T>(record: Record<string, T>, still: (appUuid: string, value: T) => boolean): Record<string, T> =>
    Object.fromEntries(Object.entries(record).filter(([k, v]) => still(k, v)));
  const superseded = Object.entries(rollout.soaking).flatMap(([k, v]) => {
    const now = commitOf(k);
    return now !== undefined && now !== v.commit && v.app ? [[k, { commit: v.commit, app: v.app }] as const] : [];
  });
  return {
    committed: { ...keep(rollout.committed, (k) => commitOf(k) !== undefined), ...Object.fromEntries(superseded) },
    soaking: keep(rollout.soaking, (k, v) => commitOf(k) === v.commit),
    refused: keep(rollout.refused, (k, v) => commitOf(k) === v.from_commit),
  };
}

/** The refusals of `rollout` as the state report carries them: the first (a device has one app in practice). */
export function reportedRollback(rollout: Rollout): DeviceRollback | null {
  return Object.values(rollout.refused)[0] ?? null;
}

/** Image refs of committed releases: kept until a newer release is committed (the way back must stay local). */
export function committedImages(rollout: Rollout): Set<string> {
  return new Set(
    Object.values(rollout.committed).flatMap((c) =>
      Object.values(c.app.releases).flatMap((r) => Object.values(r.services).map((s) => s.image)),
    ),
  );
}
