import { useEffect, useMemo, useRef, useState } from 'react';
import { LiveIndicator } from '../ui/live-indicator.js';
import { useDebounced } from '../ui/use-debounced.js';
import { SYSTEM_SOURCE, filterLines, linesAsText } from './log-lines.js';
import { useLogStream } from './use-log-stream.js';

/** How many matching lines are drawn: the newest; the rest stay searchable and in the download. */
const DRAWN = 1_000;

/**
 * The device's live log: follow, pause, filter by service, search, download. Every line is React text; escape codes
 * become class names (ansi.ts), never markup.
 */
export function LogView({ uuid, services }: { uuid: string; services: readonly string[] }) {
  const [paused, setPaused] = useState(false);
  const [service, setService] = useState('');
  const [search, setSearch] = useState('');
  const needle = useDebounced(search, 200);
  const { lines, state } = useLogStream(uuid, paused);
  const shown = useMemo(() => filterLines(lines, { service, search: needle }), [lines, service, needle]);
  const drawn = shown.length > DRAWN ? shown.slice(shown.length - DRAWN) : shown;
  const boxRef = useRef<HTMLDivElement>(null);
  const [stuck, setStuck] = useState(true);

  // Follow the bottom while the reader is there; scrolling up to read stops it until they come back down.
  // biome-ignore lint/correctness/useExhaustiveDependencies: new lines are what moves the view
  useEffect(() => {
    const box = boxRef.current;
    if (box && stuck && !paused) box.scrollTop = box.scrollHeight;
  }, [drawn, stuck, paused]);

  const download = () => {
    const url = URL.createObjectURL(new Blob([linesAsText(shown)], { type: 'text/plain' }));
    const link = document.createElement('a');
    link.href = url;
    link.download = `${uuid.slice(0, 7)}-logs.txt`;
    link.click();
    setTimeout(() => URL.revokeObjectURL(url), 1_000);
  };

  return (
    <section className="logs area-logs" aria-labelledby="logs-title">
      <div className="section-head">
        <h2 id="logs-title">Logs</h2>
        <LiveIndicator state={state} />
      </div>
      <div className="log-controls">
        <button type="button" aria-pressed={paused} onClick={() => setPaused(!paused)}>
          {paused ? 'Resume' : 'Pause'}
        </button>
        <label htmlFor="log-service">Service</label>
        <select id="log-service" value={service} onChange={(e) => setService(e.target.value)}>
          <option value="">All</option>
          {services.map((name) => (
            <option key={name} value={name}>
              {name}
            </option>
          ))}
          <option value={SYSTEM_SOURCE}>System</option>
        </select>
        <label htmlFor="log-search">Search</label>
        <input id="log-search" type="search" value={search} onChange={(e) => setSearch(e.target.value)} />
        <button type="button" onClick={download} disabled={shown.length === 0}>
          Download
        </button>
      </div>
      <p className="muted log-count">
        {shown.length === lines.length ? `${lines.length} lines` : `${shown.length} of ${lines.length} lines`}
        {paused && ' (paused: new lines wait)'}
      </p>
      <div
        ref={boxRef}
        className="log-box"
        role="log"
        aria-label="Device log"
        // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region takes focus so the keyboard can scroll it
        tabIndex={0}
        onScroll={(e) => {
          const box = e.currentTarget;
          setStuck(box.scrollHeight - box.scrollTop - box.clientHeight < 24);
        }}
      >
        {drawn.map((line) => (
          <div key={line.seq} className={line.entry.isStdErr ? 'log-line stderr' : 'log-line'}>
            <time className="log-time" dateTime={new Date(line.entry.timestamp).toISOString()}>
              {new Date(line.entry.timestamp).toLocaleTimeString()}
            </time>
            <span className="log-source">{line.entry.serviceName ?? 'system'}</span>
            <span className="log-message">
              {line.segments.map((segment, i) =>
                segment.classes === '' ? (
                  segment.text
                ) : (
                  // biome-ignore lint/suspicious/noArrayIndexKey: segments of one line never reorder
                  <span key={i} className={segment.classes}>
                    {segment.text}
                  </span>
                ),
              )}
            </span>
          </div>
        ))}
      </div>
    </section>
  );
}
