import type { ConfigSource, EffectiveVariable, EnvSource } from '@flotilla/protocol';
import { isDeviceSource, sourceLabel } from './variable-input.js';
import { VariableValue } from './variable-value.js';

export interface EffectiveTableProps<S extends EnvSource | ConfigSource> {
  caption: string;
  /** The service these values are for; null: every service (or config, which has none). */
  service: string | null;
  items: readonly EffectiveVariable<S>[];
  canWrite: boolean;
  /** The winning value is the device's own: change it. */
  onEdit(item: EffectiveVariable<S>): void;
  /** The winning value is inherited: give the device its own. */
  onOverride(item: EffectiveVariable<S>): void;
}

/**
 * What a device gets, name by name: the value that wins, where it comes from, and (struck through) the values it
 * overrides, in the merge order of target state (protocol effective-variables.ts).
 */
export function EffectiveTable<S extends EnvSource | ConfigSource>(props: EffectiveTableProps<S>) {
  const { caption, service, items, canWrite, onEdit, onOverride } = props;
  const where = service === null ? '' : ` for ${service}`;
  return (
    <div className="table-scroll">
      <table className="data stacked var-table effective">
        <caption>{caption}</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Value</th>
            <th scope="col">From</th>
            <th scope="col">Overrides</th>
            {canWrite && (
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            )}
          </tr>
        </thead>
        <tbody>
          {items.map((item) => {
            const own = isDeviceSource(item.source);
            return (
              <tr key={item.name} className={own ? 'own' : 'inherited'}>
                <th scope="row">
                  <code>{item.name}</code>
                </th>
                <td data-label="Value" className="var-value-cell">
                  <VariableValue value={item.value} />
                </td>
                <td data-label="From">
                  <span className={`source source-${item.source}`}>{sourceLabel(item.source, service)}</span>
                </td>
                <td data-label="Overrides">
                  {item.overridden.length === 0 ? (
                    <span className="muted">nothing</span>
                  ) : (
                    <ul className="overridden">
                      {[...item.overridden].reverse().map((o) => (
                        <li key={o.source}>
                          <span className="source">{sourceLabel(o.source, service)}</span>{' '}
                          <span className="overridden-value">
                            <VariableValue value={o.value} />
                          </span>
                          {o.name !== item.name && <span className="muted"> as {o.name}</span>}
                        </li>
                      ))}
                    </ul>
                  )}
                </td>
                {canWrite && (
                  <td className="row-actions">
                    {own ? (
                      <button type="button" onClick={() => onEdit(item)}>
                        Edit
                        <span className="visually-hidden">
                          {' '}
                          {item.name}
                          {where}
                        </span>
                      </button>
                    ) : (
                      <button type="button" onClick={() => onOverride(item)}>
                        Override
                        <span className="visually-hidden">
                          {' '}
                          {item.name}
                          {where}
                        </span>
                      </button>
                    )}
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
