import type { EnvVar } from '@flotilla/protocol';
import { useRef, useState } from 'react';
import { ConfirmDialog } from '../ui/confirm-dialog.js';
import type { VariableCalls } from './variable-calls.js';
import { ADD, type EditorTarget, VariableEditor } from './variable-editor.js';
import type { Draft, VariableKind } from './variable-input.js';
import { VariableTable } from './variable-table.js';

export interface OwnedVariablesProps {
  kind: VariableKind;
  calls: VariableCalls;
  /** The owner's variables; undefined while loading. */
  rows: readonly EnvVar[] | undefined;
  /** After a save or a delete: reload whatever shows these variables. */
  onChanged(): void;
  services: readonly string[] | null;
  /** Forms and buttons only when true (not while the role is unknown, never for an observer). */
  canWrite: boolean | undefined;
  /** What the form does; held by the page, which may also point it at a variable (override from elsewhere). */
  target: EditorTarget;
  onTarget(target: EditorTarget): void;
  caption: string;
  empty: string;
  addTitle: string;
  /** What deleting one does, said in its confirmation. */
  deleteNote: string;
  note?(row: EnvVar): string | null;
  /** The add / edit form's heading level: one below the heading these variables sit under. */
  headingLevel: 2 | 3;
}

const scoped = (name: string, service: string | null) => (service ? `${name} for ${service}` : name);

/** One owner's variables of one kind: the list, the add / edit form, and delete with confirmation. */
export function OwnedVariables(props: OwnedVariablesProps) {
  const { kind, calls, rows, onChanged, services, canWrite, target, onTarget } = props;
  const [deleting, setDeleting] = useState<EnvVar | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  // A new form for each target, even one equal to the last (Edit clicked twice starts from the stored value again).
  const editorKey = useRef({ target, n: 0 });
  if (editorKey.current.target !== target) editorKey.current = { target, n: editorKey.current.n + 1 };

  const save = async (draft: Draft) => {
    setMessage(null);
    const saved = await calls.set(draft);
    onChanged();
    onTarget(ADD);
    setMessage(`Saved ${scoped(saved.name, saved.service)}.`);
  };
  const edit = (row: EnvVar) =>
    onTarget({ mode: 'edit', draft: { name: row.name, value: row.value, service: row.service ?? '' } });

  return (
    <>
      {rows &&
        (rows.length === 0 ? (
          <p className="muted">{props.empty}</p>
        ) : (
          <VariableTable
            kind={kind}
            caption={props.caption}
            rows={rows}
            canWrite={canWrite === true}
            onEdit={edit}
            onDelete={setDeleting}
            note={props.note}
          />
        ))}
      <div aria-live="polite">{message && <p className="success">{message}</p>}</div>
      {canWrite === true && (
        <VariableEditor
          key={editorKey.current.n}
          kind={kind}
          addTitle={props.addTitle}
          services={services}
          target={target}
          onSave={save}
          onCancel={() => onTarget(ADD)}
          headingLevel={props.headingLevel}
        />
      )}
      {deleting && (
        <ConfirmDialog
          title={`Delete ${scoped(deleting.name, deleting.service)}?`}
          confirmLabel="Delete variable"
          onConfirm={async () => {
            setMessage(null);
            await calls.remove(deleting.name, deleting.service);
            onChanged();
            if (target.mode === 'edit' && target.draft.name === deleting.name) onTarget(ADD);
            setMessage(`Deleted ${scoped(deleting.name, deleting.service)}.`);
          }}
          onClose={() => setDeleting(null)}
        >
          <p>{props.deleteNote}</p>
        </ConfirmDialog>
      )}
    </>
  );
}
