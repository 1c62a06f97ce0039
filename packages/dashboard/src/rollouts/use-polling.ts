import { useEffect } from 'react';

/**
 * Calls `reload` every `ms` while `active` and the page is visible. Rollouts move on the server's timer (a soak
 * ends, a batch opens) with no event on the fleet's stream for most of it, so the rollout page asks again.
 */
export function usePolling(reload: () => void, ms: number, active: boolean): void {
  useEffect(() => {
    if (!active) return;
    const timer = setInterval(() => {
      if (document.visibilityState === 'visible') reload();
    }, ms);
    return () => clearInterval(timer);
  }, [reload, ms, active]);
}
