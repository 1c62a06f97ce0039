import {
  type DeviceStatusFilter,
  type ListDevicesQuery,
  deviceStatusFilterSchema,
  listDevicesQuerySchema,
} from '@flotilla/protocol';
import type { z } from 'zod';

export type DeviceSort = NonNullable<ListDevicesQuery['sort']>;
export type SortColumn = 'name' | 'lastSeen' | 'status' | 'created';

/** What the device table shows, kept in the page's URL so a reload or a shared link shows the same rows. */
export interface DeviceFilters {
  readonly search: string;
  readonly status: DeviceStatusFilter | '';
  readonly release: string;
  readonly sort: DeviceSort;
}

export const DEFAULT_FILTERS: DeviceFilters = { search: '', status: '', release: '', sort: 'name' };

const MAX_SEARCH = 100;

/** Filters from the URL; a value the protocol would refuse falls back to its default instead of failing the page. */
export function filtersFromParams(params: URLSearchParams): DeviceFilters {
  const status = deviceStatusFilterSchema.safeParse(params.get('status'));
  const sort = listDevicesQuerySchema.shape.sort.safeParse(params.get('sort') ?? undefined);
  const release = params.get('release') ?? '';
  return {
    search: (params.get('search') ?? '').slice(0, MAX_SEARCH),
    status: status.success ? status.data : '',
    release: /^[0-9a-f]{7,64}$/.test(release) ? release : '',
    sort: sort.success && sort.data ? sort.data : DEFAULT_FILTERS.sort,
  };
}

/** The URL form of the filters: defaults left out, so the plain table has a plain URL. */
export function filtersToParams(filters: DeviceFilters): URLSearchParams {
  const params = new URLSearchParams();
  if (filters.search !== '') params.set('search', filters.search);
  if (filters.status !== '') params.set('status', filters.status);
  if (filters.release !== '') params.set('release', filters.release);
  if (filters.sort !== DEFAULT_FILTERS.sort) params.set('sort', filters.sort);
  return params;
}

export type DeviceListQuery = z.output<typeof listDevicesQuerySchema>;

/** The `GET /devices` query for one page of the table, checked against the protocol's schema. */
export function listQuery(fleet: string, filters: DeviceFilters, offset: number, limit: number): DeviceListQuery {
  const search = filters.search.trim();
  const query: DeviceListQuery = { fleet, sort: filters.sort, limit, offset };
  if (search !== '') query.search = search;
  if (filters.status !== '') query.status = filters.status;
  if (filters.release !== '') query.release = filters.release;
  return listDevicesQuerySchema.parse(query);
}

/**
 * The sort after a click on a column header: the same column flips its direction; another column starts A→Z for
 * names and states, newest first for times.
 */
export function toggleSort(current: DeviceSort, column: SortColumn): DeviceSort {
  if (current === column) return `-${column}`;
  if (current === `-${column}`) return column;
  return column === 'lastSeen' || column === 'created' ? `-${column}` : column;
}

/** The column's `aria-sort`. */
export function sortDirection(current: DeviceSort, column: SortColumn): 'ascending' | 'descending' | 'none' {
  if (current === column) return 'ascending';
  if (current === `-${column}`) return 'descending';
  return 'none';
}

/** Identity of a result set: rows fetched under another key belong to another table. */
export function filtersKey(fleet: string, filters: DeviceFilters): string {
  return JSON.stringify([fleet, filters.search.trim(), filters.status, filters.release, filters.sort]);
}
