import { type DeviceStatusFilter, type Release, deviceStatusFilterSchema } from '@flotilla/protocol';
import { useEffect, useState } from 'react';
import { short } from '../ui/format.js';
import { useDebounced } from '../ui/use-debounced.js';
import type { DeviceFilters } from './device-query.js';
import { STATUS_LABELS } from './device-status.js';

export interface DeviceFiltersProps {
  filters: DeviceFilters;
  releases: readonly Release[];
  onChange(filters: DeviceFilters): void;
}

/** Search (sent once typing pauses), state and release filters; each control labelled. */
export function DeviceFiltersBar({ filters, releases, onChange }: DeviceFiltersProps) {
  const [search, setSearch] = useState(filters.search);
  const settled = useDebounced(search, 300);
  const latest = { filters, onChange };

  // biome-ignore lint/correctness/useExhaustiveDependencies: only a settled search changes the filters
  useEffect(() => {
    if (settled !== latest.filters.search) latest.onChange({ ...latest.filters, search: settled });
  }, [settled]);

  return (
    <search className="filters" aria-label="Filter devices">
      <label htmlFor="device-search">Search</label>
      <input
        id="device-search"
        type="search"
        placeholder="Name, UUID or tag"
        maxLength={100}
        value={search}
        onChange={(e) => setSearch(e.target.value)}
      />
      <label htmlFor="device-status">State</label>
      <select
        id="device-status"
        value={filters.status}
        onChange={(e) => {
          const status = deviceStatusFilterSchema.safeParse(e.target.value);
          onChange({ ...filters, status: status.success ? (status.data as DeviceStatusFilter) : '' });
        }}
      >
        <option value="">Any</option>
        {deviceStatusFilterSchema.options.map((status) => (
          <option key={status} value={status}>
            {STATUS_LABELS[status]}
          </option>
        ))}
      </select>
      <label htmlFor="device-release">Release</label>
      <select
        id="device-release"
        value={filters.release}
        onChange={(e) => onChange({ ...filters, release: e.target.value })}
      >
        <option value="">Any</option>
        {releases.map((release) => (
          <option key={release.id} value={release.commit}>
            {release.version} ({short(release.commit)})
          </option>
        ))}
      </select>
    </search>
  );
}
