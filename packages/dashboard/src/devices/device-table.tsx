import type { Device } from '@flotilla/protocol';
import { useVirtualizer } from '@tanstack/react-virtual';
import { useEffect, useRef } from 'react';
import { Link } from 'react-router';
import { StatusBadge } from '../ui/status-badge.js';
import { short, timeAgo } from '../ui/format.js';
import { type DeviceSort, type SortColumn, sortDirection, toggleSort } from './device-query.js';
import type { DeviceRows } from './use-device-rows.js';

const ROW_HEIGHT = 40;

interface Column {
  id: string;
  label: string;
  sort?: SortColumn;
  cell(device: Device, now: number): React.ReactNode;
}

const COLUMNS: Column[] = [
  {
    id: 'name',
    label: 'Name',
    sort: 'name',
    cell: (d) => (
      <Link to={`/devices/${d.uuid}`} className="device-link">
        {d.name}
      </Link>
    ),
  },
  { id: 'uuid', label: 'UUID', cell: (d) => <code>{short(d.uuid)}</code> },
  { id: 'status', label: 'Status', sort: 'status', cell: (d) => <StatusBadge device={d} /> },
  {
    id: 'release',
    label: 'Release',
    cell: (d) => (
      <>
        <code>{short(d.runningRelease)}</code>
        {d.targetRelease !== null && d.targetRelease !== d.runningRelease && (
          <span className="muted">
            {' → '}
            <code>{short(d.targetRelease)}</code>
          </span>
        )}
      </>
    ),
  },
  { id: 'ip', label: 'IP address', cell: (d) => d.ipAddress ?? '—' },
  { id: 'agent', label: 'Agent', cell: (d) => d.agentVersion ?? '—' },
  { id: 'lastSeen', label: 'Last seen', sort: 'lastSeen', cell: (d, now) => timeAgo(d.lastSeenAt, now) },
  { id: 'created', label: 'Added', sort: 'created', cell: (d, now) => timeAgo(d.createdAt, now) },
];

export interface DeviceTableProps {
  rows: DeviceRows;
  sort: DeviceSort;
  onSort(sort: DeviceSort): void;
  /** A new result set (another filter): the table scrolls back to its top. */
  resultKey: string;
  now: number;
}

/**
 * The fleet's devices, virtualized: only the rows in view (and a few either side) are in the DOM, so 10,000 rows
 * scroll like 40. A real <table> (rows laid out by CSS grid and flex so they can be positioned), with aria-rowcount
 * and aria-rowindex telling assistive technology the full size; the header stays in view (sticky).
 */
export function DeviceTable({ rows, sort, onSort, resultKey, now }: DeviceTableProps) {
  const scrollRef = useRef<HTMLDivElement>(null);
  const count = rows.total ?? 0;
  const virtualizer = useVirtualizer({
    count,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 12,
  });
  const items = virtualizer.getVirtualItems();
  const first = items[0]?.index ?? 0;
  const last = items[items.length - 1]?.index ?? 0;
  const { showRange } = rows;

  useEffect(() => showRange(first, last), [first, last, showRange]);
  // biome-ignore lint/correctness/useExhaustiveDependencies: a new result set is what moves the table to its top
  useEffect(() => {
    scrollRef.current?.scrollTo({ top: 0 });
  }, [resultKey]);

  return (
    <div ref={scrollRef} className="device-table-scroll">
      <table className="device-table" aria-label="Devices" aria-rowcount={count + 1}>
        <thead>
          <tr aria-rowindex={1}>
            {COLUMNS.map((column) => (
              <th
                key={column.id}
                scope="col"
                className={`cell-${column.id}`}
                aria-sort={column.sort ? sortDirection(sort, column.sort) : undefined}
              >
                {column.sort ? (
                  <SortButton column={column.sort} label={column.label} sort={sort} onSort={onSort} />
                ) : (
                  column.label
                )}
              </th>
            ))}
          </tr>
        </thead>
        <tbody style={{ height: virtualizer.getTotalSize() }}>
          {items.map((item) => {
            const device = rows.rowAt(item.index);
            return (
              <tr
                key={device?.uuid ?? `row-${item.index}`}
                aria-rowindex={item.index + 2}
                style={{ transform: `translateY(${item.start}px)`, height: ROW_HEIGHT }}
              >
                {device ? (
                  COLUMNS.map((column) => (
                    <td key={column.id} className={`cell-${column.id}`}>
                      {column.cell(device, now)}
                    </td>
                  ))
                ) : (
                  <td className="cell-loading">Loading…</td>
                )}
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

const MARKS = { ascending: ' ▲', descending: ' ▼', none: '' } as const;

function SortButton(props: { column: SortColumn; label: string; sort: DeviceSort; onSort(sort: DeviceSort): void }) {
  const { column, label, sort, onSort } = props;
  return (
    <button type="button" className="sort-button" onClick={() => onSort(toggleSort(sort, column))}>
      {label}
      <span aria-hidden="true">{MARKS[sortDirection(sort, column)]}</span>
    </button>
  );
}
