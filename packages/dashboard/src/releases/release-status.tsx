import type { ReleaseStatus } from '@flotilla/protocol';

const WORDS: Record<ReleaseStatus, string> = { running: 'Building', success: 'Success', failed: 'Failed' };
const TONE: Record<ReleaseStatus, string> = { running: 'updating', success: 'online', failed: 'failed' };

/** A release's status as a badge: building (its images are still being pushed), success or failed. */
export function ReleaseStatusBadge({ status }: { status: ReleaseStatus }) {
  return <span className={`badge badge-${TONE[status]}`}>{WORDS[status]}</span>;
}
