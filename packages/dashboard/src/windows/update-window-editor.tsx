import { type UpdateWindow, formatDurationSeconds } from '@flotilla/protocol';
import { type FormEvent, type ReactNode, useId, useState } from 'react';
import { describeError } from '../api/dashboard-api.js';
import { browserTimeZone, type WindowFields, windowInput } from './window-input.js';

export interface UpdateWindowEditorProps {
  /** Whose window: `fleet` or `device` (words and ids). */
  owner: 'fleet' | 'device';
  /** The window in force, in words (whose it is, when it opens). */
  description: ReactNode;
  /** The owner's own window (what the form starts from and what Clear removes); null: it has none. */
  own: UpdateWindow | null;
  canWrite: boolean;
  onSet(window: UpdateWindow): Promise<void>;
  onClear(): Promise<void>;
}

const fieldsOf = (window: UpdateWindow | null): WindowFields =>
  window
    ? { cron: window.cron, duration: formatDurationSeconds(window.durationSeconds), timezone: window.timezone }
    : { cron: '0 2 * * *', duration: '2h', timezone: browserTimeZone() };

/**
 * A maintenance window: shown to everyone; set (cron, duration, time zone) and cleared by those who may change it.
 * The form checks its input with the route's schema before sending; the server's verdict on the expression and the
 * time zone (UPDATE_WINDOW_INVALID) is shown as it comes.
 */
export function UpdateWindowEditor({ owner, description, own, canWrite, onSet, onClear }: UpdateWindowEditorProps) {
  const id = useId();
  const [fields, setFields] = useState<WindowFields>(() => fieldsOf(own));
  const [fault, setFault] = useState<{ field: keyof WindowFields; message: string } | null>(null);
  const [message, setMessage] = useState<{ text: string; ok: boolean } | null>(null);
  const [busy, setBusy] = useState(false);
  const titleId = `${id}-title`;

  const run = async (work: () => Promise<void>, done: string) => {
    setBusy(true);
    setMessage(null);
    try {
      await work();
      setMessage({ text: done, ok: true });
    } catch (e) {
      setMessage({ text: describeError(e), ok: false });
    } finally {
      setBusy(false);
    }
  };
  const submit = (event: FormEvent) => {
    event.preventDefault();
    const input = windowInput(fields);
    if (!input.ok) {
      setFault({ field: input.field, message: input.message });
      setMessage(null);
      return;
    }
    setFault(null);
    void run(() => onSet(input.body), `The ${owner}’s window is set.`);
  };
  const field = (name: keyof WindowFields, label: string, hint: string) => {
    const inputId = `${id}-${name}`;
    const wrong = fault?.field === name;
    return (
      <>
        <label htmlFor={inputId}>{label}</label>
        <div>
          <input
            id={inputId}
            value={fields[name]}
            spellCheck={false}
            autoComplete="off"
            aria-invalid={wrong || undefined}
            aria-describedby={wrong ? `${inputId}-error ${inputId}-hint` : `${inputId}-hint`}
            onChange={(e) => setFields({ ...fields, [name]: e.target.value })}
          />
          {wrong && (
            <p id={`${inputId}-error`} className="error window-field-note" role="alert">
              {fault.message}
            </p>
          )}
          <p id={`${inputId}-hint`} className="muted window-field-note">
            {hint}
          </p>
        </div>
      </>
    );
  };

  return (
    <section className="update-window" aria-labelledby={titleId}>
      <h2 id={titleId}>Maintenance window</h2>
      <p>{description}</p>
      {canWrite && (
        <>
          <form className="form-grid" aria-label={`Set the ${owner}’s maintenance window`} onSubmit={submit} noValidate>
            {field('cron', 'Opens at (cron)', 'minute hour day month weekday, e.g. 0 2 * * * (every day at 02:00)')}
            {field('duration', 'Open for', 'e.g. 2h, 90m, 1h30m')}
            {field('timezone', 'Time zone', 'an IANA name, e.g. Europe/Paris or UTC')}
            <div className="form-actions button-row">
              <button type="submit" className="primary" disabled={busy}>
                Set window
              </button>
              {own && (
                <button
                  type="button"
                  disabled={busy}
                  onClick={() =>
                    run(
                      onClear,
                      owner === 'fleet'
                        ? 'The fleet’s window is cleared: updates apply at once (unless a device has its own).'
                        : 'The device’s own window is cleared: the fleet’s applies again.',
                    )
                  }
                >
                  Clear window
                </button>
              )}
            </div>
          </form>
          <div aria-live="polite">
            {message && (
              <p className={message.ok ? 'success' : 'error'} role={message.ok ? undefined : 'alert'}>
                {message.text}
              </p>
            )}
          </div>
        </>
      )}
    </section>
  );
}
