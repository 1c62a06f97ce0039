import { previewOf } from './variable-input.js';

/**
 * A value in a table cell: whole when short, else its start with the rest one click (or Enter) away, so a 64 KiB
 * certificate does not push the table off the screen. Always text: a value may hold markup.
 */
export function VariableValue({ value }: { value: string }) {
  if (value === '') return <span className="muted">(empty)</span>;
  const { text, more } = previewOf(value);
  if (!more) return <code className="var-value">{text}</code>;
  return (
    <details className="var-value-more">
      <summary>
        <code className="var-value">{text}</code> <span className="muted">({value.length} characters)</span>
      </summary>
      <pre className="var-value-full">{value}</pre>
    </details>
  );
}
