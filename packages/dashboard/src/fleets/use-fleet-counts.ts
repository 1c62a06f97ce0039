import { type FleetCounts, USER_ROUTES, fleetCountsSchema } from '@flotilla/protocol';
import { useEffect, useState } from 'react';
import { LiveStream } from '../api/live-stream.js';
import { parseEvent } from '../api/parse-event.js';
import { useApi } from '../auth/session.js';
import type { LiveState } from '../devices/use-fleet-events.js';

export interface LiveFleetCounts {
  /** By fleet slug; a fleet is missing until its first figures arrive. */
  counts: ReadonlyMap<string, FleetCounts>;
  live: LiveState;
}

/**
 * The device counts by status of every fleet the user sees, live (`GET /fleet-counts/events`): one stream for the
 * whole page, however many fleets, and the server sends a fleet's figures only when they move. `fleetsKey` names
 * the fleets shown: when it changes (a fleet created), the stream is opened again so the new fleet is in it.
 */
export function useFleetCounts(fleetsKey: string | null): LiveFleetCounts {
  const api = useApi();
  const [counts, setCounts] = useState<ReadonlyMap<string, FleetCounts>>(new Map());
  const [live, setLive] = useState<LiveState>('connecting');

  useEffect(() => {
    if (fleetsKey === null) return;
    setLive('connecting');
    const stream = new LiveStream({
      url: USER_ROUTES.fleetCountsEvents.path,
      events: {
        counts: (data) => {
          const figures = parseEvent(fleetCountsSchema, data, 'counts');
          if (figures) setCounts((current) => new Map(current).set(figures.fleet, figures));
        },
      },
      // Every fleet's figures come again on each open: nothing to refetch.
      onOpen: () => setLive('live'),
      onDown: () => {
        setLive('down');
        // A session that ended shows as a 401 here, and the API client sends the user to the sign-in page.
        api.call(USER_ROUTES.csrfToken).catch(() => undefined);
      },
    });
    stream.start();
    return () => stream.close();
  }, [fleetsKey, api]);

  return { counts, live };
}
