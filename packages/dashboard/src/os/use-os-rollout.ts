import { FlotillaError, type OsRollout, USER_ROUTES } from '@flotilla/protocol';
import { type Resource, useResource } from '../api/use-resource.js';
import { useApi } from '../auth/session.js';
import { usePolling } from '../rollouts/use-polling.js';
import { isActive } from '../rollouts/rollout-words.js';

/** How often an unfinished OS rollout is asked for again: it moves on the server's timer, with no event. */
const POLL_MS = 2_000;

/**
 * The fleet's latest OS rollout, null when it never had one. `possible` false asks nothing: the fleet view names its
 * latest OS rollout (`osRollout`), so a fleet that never had one is not asked for it. (ROLLOUT_NOT_FOUND, a rollout
 * deleted with its OS release meanwhile, is none too.) Polled while it runs or is paused.
 */
export function useOsRollout(slug: string, possible: boolean): Resource<OsRollout | null> {
  const api = useApi();
  const rollout = useResource(possible ? `os-rollout:${slug}` : null, async () => {
    try {
      return await api.call(USER_ROUTES.getOsRollout, { params: { slug } });
    } catch (e) {
      if (e instanceof FlotillaError && e.code === 'ROLLOUT_NOT_FOUND') return null;
      throw e;
    }
  });
  const status = rollout.data?.status;
  usePolling(rollout.reload, POLL_MS, status !== undefined && isActive(status));
  return rollout;
}
