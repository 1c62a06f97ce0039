import { type Device, USER_ROUTES } from '@flotilla/protocol';
import { useCallback, useEffect, useReducer, useRef, useState } from 'react';
import type { DashboardApi } from '../api/dashboard-api.js';
import { type DeviceFilters, filtersKey, listQuery } from './device-query.js';
import { RowCache } from './row-cache.js';
import { type LiveState, useFleetEvents } from './use-fleet-events.js';

export const PAGE_SIZE = 100;
/** 30 pages of 100: enough to scroll back and forth without refetching, bounded on a 10,000-device fleet. */
const MAX_PAGES = 30;
/** A burst of live events causes at most one refetch of the shown pages per this long. */
const REFRESH_AFTER_MS = 1_500;

export interface DeviceRows {
  total: number | null;
  rowAt(index: number): Device | undefined;
  /** The rows now on screen: their pages are fetched if missing. */
  showRange(first: number, last: number): void;
  error: unknown;
  live: LiveState;
  /** Changes whenever rows changed, for components that memoize on it. */
  version: number;
}

/**
 * The device table's data: pages fetched as the user scrolls (RowCache), a new result set for each filter, and the
 * fleet's live events applied in place. A device no held page has (new, or on a page not fetched), or a change that
 * may move a row (a filter or a sort other than by name is in use), asks for a refetch of the shown pages, at most
 * one per REFRESH_AFTER_MS.
 */
export function useDeviceRows(
  api: DashboardApi,
  fleet: string,
  filters: DeviceFilters,
  /** Told of every device event too, after the rows took it (the page may refetch what it shows around them). */
  onDevice?: (device: Device) => void,
  /** Told when the fleet's release changed, after the shown rows were asked for again. */
  onFleetChanged?: (targetRelease: string | null) => void,
): DeviceRows {
  const cacheRef = useRef<RowCache<Device> | null>(null);
  cacheRef.current ??= new RowCache<Device>({ pageSize: PAGE_SIZE, maxPages: MAX_PAGES });
  const cache = cacheRef.current;
  const [version, bump] = useReducer((n: number) => n + 1, 0);
  const [error, setError] = useState<unknown>(undefined);
  const rangeRef = useRef({ first: 0, last: 0 });
  const refreshTimer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const key = filtersKey(fleet, filters);
  const queryRef = useRef({ fleet, filters });
  queryRef.current = { fleet, filters };

  const fetchShown = useCallback(() => {
    const { first, last } = rangeRef.current;
    for (const page of cache.pagesToFetch(first, last)) {
      const generation = cache.startFetch(page);
      const { fleet: slug, filters: current } = queryRef.current;
      api.call(USER_ROUTES.listDevices, { query: listQuery(slug, current, page * PAGE_SIZE, PAGE_SIZE) }).then(
        (answer) => {
          if (cache.fill(generation, page, answer.items, answer.total)) {
            setError(undefined);
            bump();
            // The total may have grown into the shown range, which is then fetched too.
            fetchShown();
          }
        },
        (e: unknown) => {
          cache.fetchFailed(generation, page);
          if (generation === cache.generation) setError(e);
        },
      );
    }
  }, [api, cache]);

  // biome-ignore lint/correctness/useExhaustiveDependencies: `key` stands for fleet and filters, which queryRef carries
  useEffect(() => {
    cache.reset();
    setError(undefined);
    bump();
    fetchShown();
  }, [key, cache, fetchShown]);

  useEffect(
    () => () => {
      if (refreshTimer.current) clearTimeout(refreshTimer.current);
    },
    [],
  );

  const refreshSoon = useCallback(() => {
    if (refreshTimer.current) return;
    refreshTimer.current = setTimeout(() => {
      refreshTimer.current = null;
      cache.invalidate();
      fetchShown();
    }, REFRESH_AFTER_MS);
  }, [cache, fetchShown]);

  const live = useFleetEvents(fleet, {
    onDevice: (device) => {
      const held = cache.update(device);
      if (held) bump();
      const { filters: current } = queryRef.current;
      const orderMayChange = current.sort !== 'name' && current.sort !== '-name';
      const filtered = current.search.trim() !== '' || current.status !== '' || current.release !== '';
      if (!held || orderMayChange || filtered) refreshSoon();
      onDevice?.(device);
    },
    onRemoved: (uuid) => {
      cache.remove(uuid);
      bump();
      fetchShown();
    },
    onFleetChanged: (targetRelease) => {
      // Each unpinned device's target changed: the rows on screen are fetched again (a page or two), whatever the
      // size of the fleet, instead of an event per device.
      cache.invalidate();
      fetchShown();
      onFleetChanged?.(targetRelease);
    },
    onReconnected: () => {
      cache.invalidate();
      fetchShown();
    },
  });

  const showRange = useCallback(
    (first: number, last: number) => {
      rangeRef.current = { first, last };
      fetchShown();
    },
    [fetchShown],
  );

  return { total: cache.total, rowAt: (index) => cache.rowAt(index), showRange, error, live, version };
}
