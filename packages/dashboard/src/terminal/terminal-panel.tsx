import { useEffect, useRef, useState } from 'react';
import type { TerminalSession } from './terminal-session.js';

type Phase = 'opening' | 'running' | 'ended';

interface Open {
  /** A new one per opening, so each gets its own TerminalView (and stream). */
  id: number;
  service: string | undefined;
}

/**
 * A shell on the device's host or in one of its services, in the page: the same WebSocket the CLI's `flotilla ssh`
 * uses, authenticated by the session cookie. xterm.js is loaded only when a terminal is first opened.
 */
export function TerminalPanel({ uuid, services }: { uuid: string; services: readonly string[] }) {
  const [choice, setChoice] = useState('');
  const [open, setOpen] = useState<Open | null>(null);
  const [phase, setPhase] = useState<Phase>('ended');
  const [status, setStatus] = useState('');
  const [failed, setFailed] = useState(false);
  const closeRef = useRef<HTMLButtonElement>(null);
  const running = open !== null && phase !== 'ended';
  const where = (service: string | undefined) => (service === undefined ? 'the host' : `service ${service}`);

  const start = () => {
    const service = choice === '' ? undefined : choice;
    setOpen((previous) => ({ id: (previous?.id ?? 0) + 1, service }));
    setPhase('opening');
    setFailed(false);
    setStatus(`Connecting to ${where(service)}…`);
  };
  const close = () => {
    setOpen(null);
    setPhase('ended');
    setStatus('');
  };

  return (
    <section className="area-terminal" aria-labelledby="terminal-title">
      <h2 id="terminal-title">Terminal</h2>
      <div className="terminal-controls">
        <label htmlFor="terminal-target">Shell on</label>
        <select id="terminal-target" value={choice} disabled={running} onChange={(e) => setChoice(e.target.value)}>
          <option value="">Host</option>
          {services.map((name) => (
            <option key={name} value={name}>
              Service {name}
            </option>
          ))}
        </select>
        <button type="button" onClick={start} disabled={running}>
          Open terminal
        </button>
        {open && (
          <button type="button" ref={closeRef} onClick={close}>
            Close terminal
          </button>
        )}
      </div>
      <p className={failed ? 'terminal-status error' : 'terminal-status'} role="status">
        {status}
      </p>
      {open && (
        <TerminalView
          key={open.id}
          uuid={uuid}
          service={open.service}
          label={`Terminal on ${where(open.service)}`}
          onReady={() => {
            setPhase('running');
            setStatus(`Connected to ${where(open.service)}.`);
          }}
          onEnd={(text, bad) => {
            setPhase('ended');
            setFailed(bad);
            setStatus(text);
          }}
          onLeave={() => closeRef.current?.focus()}
        />
      )}
      {open && <p className="muted terminal-hint">Every key goes to the device’s shell; F6 leaves the terminal.</p>}
    </section>
  );
}

function TerminalView({
  uuid,
  service,
  label,
  onReady,
  onEnd,
  onLeave,
}: {
  uuid: string;
  service: string | undefined;
  label: string;
  onReady(): void;
  onEnd(status: string, failed: boolean): void;
  onLeave(): void;
}) {
  const boxRef = useRef<HTMLElement>(null);
  // The callbacks change every render; the stream must not be reopened for that.
  const events = useRef({ onReady, onEnd, onLeave });
  events.current = { onReady, onEnd, onLeave };

  useEffect(() => {
    let session: TerminalSession | undefined;
    let cancelled = false;
    import('./terminal-session.js').then(
      ({ startTerminal }) => {
        const box = boxRef.current;
        if (cancelled || !box) return;
        session = startTerminal(
          box,
          { uuid, service },
          {
            onReady: () => events.current.onReady(),
            onEnd: (status, failed) => events.current.onEnd(status, failed),
            onLeave: () => events.current.onLeave(),
          },
        );
        session.focus();
      },
      (error: unknown) => events.current.onEnd(`The terminal could not be loaded: ${String(error)}`, true),
    );
    return () => {
      cancelled = true;
      session?.close();
    };
  }, [uuid, service]);

  return <section className="terminal-box" ref={boxRef} aria-label={label} />;
}
