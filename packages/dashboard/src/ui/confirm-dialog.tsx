import { type FormEvent, type ReactNode, useEffect, useId, useRef, useState } from 'react';
import { describeError } from '../api/dashboard-api.js';

export interface ConfirmDialogProps {
  title: string;
  children: ReactNode;
  /** The words on the button that acts. */
  confirmLabel: string;
  /** When set, the user must type exactly this (a fleet's or device's name) before the button acts. */
  typeToConfirm?: string;
  onConfirm(): Promise<void>;
  onClose(): void;
}

/**
 * A modal confirmation on the browser's own <dialog>: it traps focus and closes on Escape with no script of ours.
 * Focus goes back to the control that opened it however it ends (Escape, Cancel, done): the browser restores it
 * only when the dialog is closed, and Cancel or a finished action remove it instead.
 */
export function ConfirmDialog({
  title,
  children,
  confirmLabel,
  typeToConfirm,
  onConfirm,
  onClose,
}: ConfirmDialogProps) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  const inputId = useId();
  const [typed, setTyped] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  // What had focus when the dialog was first rendered, before showModal moved it: the control that opened it.
  const [opener] = useState(() => document.activeElement);

  // No close() on cleanup: a removed <dialog> stops being modal by itself, and a close() there would fire `close`
  // (so onClose) after StrictMode's trial unmount, closing a dialog that was just opened.
  // INVARIANT: the cleanup's focus() only takes once the dialog is gone: while it is modal the opener is inert and
  // focus() does nothing (so StrictMode's trial unmount leaves focus in the dialog).
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
    return () => {
      if (opener instanceof HTMLElement && opener.isConnected) opener.focus();
    };
  }, [opener]);

  const ready = typeToConfirm === undefined || typed === typeToConfirm;
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (!ready) return;
    setBusy(true);
    setError(null);
    try {
      await onConfirm();
      onClose();
    } catch (e) {
      setError(describeError(e));
      setBusy(false);
    }
  };

  return (
    <dialog ref={ref} className="dialog" aria-labelledby={titleId} onClose={onClose}>
      <form onSubmit={submit}>
        <h2 id={titleId}>{title}</h2>
        <div className="dialog-body">{children}</div>
        {typeToConfirm !== undefined && (
          <>
            <label htmlFor={inputId}>
              Type <strong className="literal">{typeToConfirm}</strong> to confirm
            </label>
            <input
              id={inputId}
              autoComplete="off"
              spellCheck={false}
              value={typed}
              onChange={(e) => setTyped(e.target.value)}
            />
          </>
        )}
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <div className="dialog-buttons">
          <button type="button" onClick={onClose} disabled={busy}>
            Cancel
          </button>
          <button type="submit" className="danger" disabled={!ready || busy}>
            {busy ? 'Working…' : confirmLabel}
          </button>
        </div>
      </form>
    </dialog>
  );
}
