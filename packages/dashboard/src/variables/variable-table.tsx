import type { EnvVar } from '@flotilla/protocol';
import type { VariableKind } from './variable-input.js';
import { VariableValue } from './variable-value.js';

export interface VariableTableProps {
  kind: VariableKind;
  caption: string;
  rows: readonly EnvVar[];
  /** Shows Edit and Delete on each row; false for those who only read. */
  canWrite: boolean;
  onEdit(row: EnvVar): void;
  onDelete(row: EnvVar): void;
  /** A word about a row, e.g. that its service is not in the release. */
  note?(row: EnvVar): string | null;
}

/** Variables as one owner (a fleet, a device) stores them: one row each, per service where set so. */
export function VariableTable({ kind, caption, rows, canWrite, onEdit, onDelete, note }: VariableTableProps) {
  const scoped = (row: EnvVar) => (row.service === null ? row.name : `${row.name} for ${row.service}`);
  return (
    <div className="table-scroll">
      <table className="data stacked var-table">
        <caption>{caption}</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            {kind === 'env' && <th scope="col">Service</th>}
            <th scope="col">Value</th>
            {canWrite && (
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            )}
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => {
            const remark = note?.(row) ?? null;
            return (
              <tr key={row.id}>
                <th scope="row">
                  <code>{row.name}</code>
                </th>
                {kind === 'env' && (
                  <td data-label="Service">
                    {row.service ?? <span className="muted">all services</span>}
                    {remark && <span className="muted var-note"> ({remark})</span>}
                  </td>
                )}
                <td data-label="Value" className="var-value-cell">
                  <VariableValue value={row.value} />
                </td>
                {canWrite && (
                  <td className="row-actions">
                    <button type="button" onClick={() => onEdit(row)}>
                      Edit<span className="visually-hidden"> {scoped(row)}</span>
                    </button>
                    <button type="button" className="danger subtle" onClick={() => onDelete(row)}>
                      Delete<span className="visually-hidden"> {scoped(row)}</span>
                    </button>
                  </td>
                )}
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
