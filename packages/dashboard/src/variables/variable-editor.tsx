import { type FormEvent, useEffect, useId, useRef, useState } from 'react';
import { describeError } from '../api/dashboard-api.js';
import { type Draft, type DraftField, type VariableKind, checkDraft } from './variable-input.js';

/**
 * What the form does: add a variable; edit the value of one (name and service fixed); or override an inherited
 * one (name fixed, the scope to set it in chosen).
 */
export interface EditorTarget {
  mode: 'add' | 'edit' | 'override';
  draft: Draft;
}

export const ADD: EditorTarget = { mode: 'add', draft: { name: '', value: '', service: '' } };

export interface VariableEditorProps {
  kind: VariableKind;
  /** The form's heading in add mode, e.g. "Add a fleet variable". */
  addTitle: string;
  /** Services a variable may be scoped to; null: the kind has no service (config). */
  services: readonly string[] | null;
  target: EditorTarget;
  onSave(draft: Draft): Promise<void>;
  /** Back to adding, from editing or overriding. */
  onCancel(): void;
  /** The form's heading level: one below the heading of the section it sits in (axe's heading-order). */
  headingLevel: 2 | 3;
}

/**
 * The add / edit / override form of a variable. The parent gives it a new `key` with each target, so its fields
 * start from the target's draft. Values may be long and multi-line: a textarea, kept as typed (not trimmed).
 */
export function VariableEditor(props: VariableEditorProps) {
  const { kind, addTitle, services, target, onSave, onCancel } = props;
  const Heading = props.headingLevel === 2 ? 'h2' : 'h3';
  const id = useId();
  const valueRef = useRef<HTMLTextAreaElement>(null);
  const [draft, setDraft] = useState<Draft>(target.draft);
  const [errors, setErrors] = useState<Partial<Record<DraftField, string>>>({});
  const [failure, setFailure] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const { mode } = target;

  useEffect(() => {
    if (mode === 'add') return;
    valueRef.current?.focus();
    valueRef.current?.scrollIntoView({ block: 'center' });
  }, [mode]);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const checked = checkDraft(kind, draft);
    setErrors(checked.errors ?? {});
    setFailure(null);
    if (checked.errors) {
      const first = (['name', 'service', 'value'] as const).find((field) => checked.errors[field]);
      document.getElementById(`${id}-${first}`)?.focus();
      return;
    }
    setBusy(true);
    try {
      await onSave(draft);
      if (mode === 'add') setDraft(ADD.draft);
    } catch (e) {
      setFailure(describeError(e));
    } finally {
      setBusy(false);
    }
  };
  const change = (field: DraftField, value: string) => {
    setDraft((d) => ({ ...d, [field]: value }));
    setErrors((e) => ({ ...e, [field]: undefined }));
  };
  const fieldProps = (field: DraftField) => ({
    id: `${id}-${field}`,
    'aria-invalid': errors[field] ? true : undefined,
    'aria-describedby':
      [errors[field] ? `${id}-${field}-error` : '', field === 'name' ? `${id}-name-hint` : '']
        .filter(Boolean)
        .join(' ') || undefined,
  });
  const fieldError = (field: DraftField) =>
    errors[field] && (
      <p id={`${id}-${field}-error`} className="error field-error" role="alert">
        {errors[field]}
      </p>
    );
  const choices = services === null ? [] : [...new Set([...services, ...(draft.service ? [draft.service] : [])])];
  const scope = draft.service === '' ? '' : ` for ${draft.service}`;
  const title =
    mode === 'add'
      ? addTitle
      : mode === 'edit'
        ? `Edit ${draft.name}${scope}`
        : `Override ${draft.name} on this device`;

  return (
    <form className="card var-editor" onSubmit={submit} aria-labelledby={`${id}-title`} noValidate>
      <Heading id={`${id}-title`}>{title}</Heading>
      <div className="var-field">
        <label htmlFor={`${id}-name`}>Name</label>
        <input
          {...fieldProps('name')}
          className="var-name-input"
          autoComplete="off"
          spellCheck={false}
          readOnly={mode !== 'add'}
          value={draft.name}
          onChange={(e) => change('name', e.target.value)}
        />
        <p id={`${id}-name-hint`} className="muted hint">
          {kind === 'env'
            ? 'Letters, digits and _, not starting with a digit.'
            : 'FLOTILLA_, BALENA_ or RESIN_, then letters, digits and _ (the three prefixes name one setting).'}
        </p>
        {fieldError('name')}
      </div>
      {services !== null && (
        <div className="var-field">
          <label htmlFor={`${id}-service`}>Service</label>
          <select
            {...fieldProps('service')}
            disabled={mode === 'edit'}
            value={draft.service}
            onChange={(e) => change('service', e.target.value)}
          >
            <option value="">All services</option>
            {choices.map((service) => (
              <option key={service} value={service}>
                {service}
              </option>
            ))}
          </select>
          {fieldError('service')}
        </div>
      )}
      <div className="var-field">
        <label htmlFor={`${id}-value`}>Value</label>
        <textarea
          {...fieldProps('value')}
          ref={valueRef}
          rows={Math.min(12, Math.max(3, draft.value.split('\n').length + 1))}
          spellCheck={false}
          value={draft.value}
          onChange={(e) => change('value', e.target.value)}
        />
        {fieldError('value')}
      </div>
      <div className="button-row">
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Saving…' : mode === 'add' ? 'Add variable' : 'Save'}
        </button>
        {mode !== 'add' && (
          <button type="button" onClick={onCancel} disabled={busy}>
            Cancel
          </button>
        )}
      </div>
      {failure && (
        <p className="error" role="alert">
          {failure}
        </p>
      )}
    </form>
  );
}
