import type { Fleet } from '@flotilla/protocol';
import { Link } from 'react-router';
import { short } from '../ui/format.js';
import { isActive, rolloutStatusWord } from './rollout-words.js';

/** On the fleet page while a staged rollout runs or is paused: which release, and a way to its page. */
export function RolloutNotice({ fleet }: { fleet: Fleet }) {
  const rollout = fleet.rollout;
  if (!rollout || !isActive(rollout.status)) return null;
  return (
    <p className={`notice rollout-notice rollout-${rollout.status}`}>
      Staged rollout {rolloutStatusWord(rollout.status).toLowerCase()}: release {rollout.release.version}{' '}
      <code>{short(rollout.release.commit)}</code>.{' '}
      <Link to={`/fleets/${encodeURIComponent(fleet.slug)}/rollout`}>See the rollout</Link>
    </p>
  );
}
