import { type Rollout, USER_ROUTES } from '@flotilla/protocol';
import { Link, useParams } from 'react-router';
import { useResource } from '../api/use-resource.js';
import { useApi } from '../auth/session.js';
import { useCanWrite } from '../auth/use-can-write.js';
import { useFleetEvents } from '../devices/use-fleet-events.js';
import { FleetNav } from '../fleets/fleet-nav.js';
import { ErrorText } from '../ui/error-text.js';
import { FactList } from '../ui/fact-list.js';
import { short, timeAgo } from '../ui/format.js';
import { LiveIndicator } from '../ui/live-indicator.js';
import { useNow } from '../ui/use-now.js';
import { RolloutControls } from './rollout-controls.js';
import { BatchTable, RolloutDeviceTable, RolloutEvents } from './rollout-tables.js';
import { isActive, planFacts, rolloutStatusTone, rolloutStatusWord } from './rollout-words.js';
import { usePolling } from './use-polling.js';

/** How often an unfinished rollout is asked for again. */
const POLL_MS = 2_000;

const RELEASE_ACTIONS = {
  pause: USER_ROUTES.pauseRollout,
  resume: USER_ROUTES.resumeRollout,
  abort: USER_ROUTES.abortRollout,
} as const;

const previousWords = (r: Rollout): string =>
  r.previousRelease ? `${r.previousRelease.version} (${short(r.previousRelease.commit)})` : 'no release';

/**
 * The fleet's latest staged rollout (`flotilla deploy --rollout` starts one): its release, status and why, its plan,
 * each batch's counts, every device's state and the events; followed while it runs or is paused (polled) and through
 * the fleet's stream (a new rollout shows without a reload), with pause, resume and abort for those who may change
 * the fleet.
 */
export function FleetRolloutPage() {
  const { slug = '' } = useParams();
  const api = useApi();
  const fleet = useResource(`fleet:${slug}`, () => api.call(USER_ROUTES.getFleet, { params: { slug } }));
  // Asked for only once the fleet says it had one: a fleet without one answers ROLLOUT_NOT_FOUND, which is no error.
  const rollout = useResource(fleet.data?.rollout ? `rollout:${slug}` : null, () =>
    api.call(USER_ROUTES.getRollout, { params: { slug } }),
  );
  // The fleet's stream says when a rollout is created, aborted, completed or ends (`fleet-changed`): the fleet (which
  // names its latest rollout) and the rollout are asked for again. A pause and a soak ending send nothing: polled below.
  const live = useFleetEvents(slug, {
    onDevice: () => undefined,
    onRemoved: () => undefined,
    onFleetChanged: () => {
      fleet.reload();
      rollout.reload();
    },
    onReconnected: () => {
      fleet.reload();
      rollout.reload();
    },
  });
  const canWrite = useCanWrite(fleet.data?.organization) === true;
  const now = useNow(10_000);
  const r = rollout.data;
  usePolling(rollout.reload, POLL_MS, r === undefined ? false : isActive(r.status) || r.waiting);
  const none = fleet.data?.rollout === null;

  return (
    <section className="rollout-page" aria-labelledby="rollout-title">
      <div className="page-head">
        <p className="crumbs">
          <Link to="/fleets">Fleets</Link> /{' '}
          <Link to={`/fleets/${encodeURIComponent(slug)}`}>{fleet.data?.name ?? slug}</Link> /
        </p>
        <h1 id="rollout-title">Rollout</h1>
        <LiveIndicator state={live} />
      </div>
      <FleetNav slug={slug} />
      <ErrorText error={fleet.error ?? rollout.error} />
      {none && (
        <p className="page-status">
          No staged rollout yet: <code>flotilla deploy {slug} --rollout "10%,50%,100%"</code> starts one.
        </p>
      )}
      {!r && !none && !fleet.error && !rollout.error && <p className="page-status">Loading the rollout…</p>}
      {r && (
        <>
          <FactList
            facts={[
              ['Rollout', `#${r.id}`],
              [
                'Release',
                <Link key="rel" to={`/releases/${r.release.id}`}>
                  {r.release.version} <code>{short(r.release.commit)}</code>
                </Link>,
              ],
              [
                'Status',
                <span key="st" className={`badge badge-${rolloutStatusTone(r.status)}`}>
                  {rolloutStatusWord(r.status)}
                  {r.waiting && ' · waiting for the release to build'}
                </span>,
              ],
              ...(r.reason ? ([['Reason', r.reason]] as [string, string][]) : []),
              [
                'Previous release',
                r.previousRelease ? `${r.previousRelease.version} (${short(r.previousRelease.commit)})` : 'none',
              ],
              [
                'Batch',
                r.waiting
                  ? 'none opened yet'
                  : `${r.currentBatch + 1} of ${r.batches.length} (${r.batches[r.currentBatch]?.label ?? ''})`,
              ],
              [
                'Started',
                <time key="c" dateTime={r.createdAt} title={r.createdAt}>
                  {timeAgo(r.createdAt, now)}
                </time>,
              ],
            ]}
          />
          {canWrite && (
            <RolloutControls
              rollout={r}
              act={(action) => api.call(RELEASE_ACTIONS[action], { params: { slug: r.fleet } })}
              onChanged={(changed) => rollout.mutate(() => changed)}
              abortTitle={`Abort the rollout of ${r.release.version}?`}
              abortWhat={
                <p>
                  Every device of the fleet that is not pinned itself goes back to the previous release,{' '}
                  {previousWords(r)}, including those that already run {r.release.version}.
                </p>
              }
              abortedText={`Aborted: every device goes back to ${previousWords(r)}.`}
            />
          )}
          <section aria-labelledby="rollout-plan-title">
            <h2 id="rollout-plan-title">Plan</h2>
            <FactList facts={planFacts(r.plan)} />
          </section>
          <BatchTable rollout={r} now={now} />
          <RolloutDeviceTable rollout={r} />
          <RolloutEvents rollout={r} />
        </>
      )}
    </section>
  );
}
