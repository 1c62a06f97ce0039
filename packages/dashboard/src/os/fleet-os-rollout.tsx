import { type OsRollout, USER_ROUTES } from '@flotilla/protocol';
import { useApi } from '../auth/session.js';
import { RolloutControls } from '../rollouts/rollout-controls.js';
import { BatchTable, RolloutDeviceTable, RolloutEvents } from '../rollouts/rollout-tables.js';
import { planFacts, rolloutStatusTone, rolloutStatusWord } from '../rollouts/rollout-words.js';
import { FactList } from '../ui/fact-list.js';
import { timeAgo } from '../ui/format.js';

const OS_ACTIONS = {
  pause: USER_ROUTES.pauseOsRollout,
  resume: USER_ROUTES.resumeOsRollout,
  abort: USER_ROUTES.abortOsRollout,
} as const;

/**
 * The fleet's latest OS rollout on its page (`flotilla rollout status <fleet> --os`): the OS, status and why, the
 * batch, each batch's figures, its devices and its events, with the release rollout's tables and controls (pause,
 * resume, abort after a confirmation) for those who may change the fleet; observers see it all without controls.
 */
export function FleetOsRollout({
  rollout,
  canWrite,
  now,
  onChanged,
}: {
  rollout: OsRollout;
  canWrite: boolean;
  now: number;
  onChanged(rollout: OsRollout): void;
}) {
  const api = useApi();
  const r = rollout;
  const os = `OS ${r.os.version}`;
  return (
    <section className="os-rollout" aria-labelledby="os-rollout-title">
      <h3 id="os-rollout-title">Staged OS rollout</h3>
      <FactList
        className="os-rollout-facts"
        facts={[
          ['Rollout', `#${r.id}`],
          ['OS', `${r.os.version} (${r.os.deviceType})`],
          [
            'Status',
            <span key="st" className={`badge badge-${rolloutStatusTone(r.status)}`}>
              {rolloutStatusWord(r.status)}
            </span>,
          ],
          ...(r.reason ? ([['Reason', r.reason]] as [string, string][]) : []),
          ['Batch', `${r.currentBatch + 1} of ${r.batches.length} (${r.batches[r.currentBatch]?.label ?? ''})`],
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
          act={(action) => api.call(OS_ACTIONS[action], { params: { slug: r.fleet } })}
          onChanged={onChanged}
          title="Control the OS rollout"
          level={3}
          abortTitle={`Abort the rollout of ${os}?`}
          abortWhat={
            <p>
              The devices of the rollout that have not installed {os} are no longer asked to; those that did keep it.
            </p>
          }
          abortedText={`Aborted: devices that have not installed ${os} are no longer asked to.`}
        />
      )}
      <BatchTable rollout={r} now={now} caption="OS rollout batches" />
      <details className="os-rollout-more">
        <summary className="os-rollout-summary">Plan and devices</summary>
        <FactList facts={planFacts(r.plan)} />
        <RolloutDeviceTable rollout={r} caption="OS rollout devices" />
      </details>
      <RolloutEvents rollout={r} title="OS rollout events" level={3} />
    </section>
  );
}
