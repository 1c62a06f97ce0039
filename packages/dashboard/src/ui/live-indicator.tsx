import type { LiveState } from '../devices/use-fleet-events.js';

const WORDS: Record<LiveState, string> = {
  connecting: 'Connecting…',
  live: 'Live',
  down: 'Reconnecting…',
};

/** Whether the page is receiving live news; announced politely when it changes. */
export function LiveIndicator({ state }: { state: LiveState }) {
  return (
    <span className={`live live-${state}`} role="status">
      {WORDS[state]}
    </span>
  );
}
