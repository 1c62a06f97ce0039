import { USER_ROUTES, logEntrySchema, path } from '@flotilla/protocol';
import { useEffect, useRef, useState } from 'react';
import { LiveStream } from '../api/live-stream.js';
import { parseEvent } from '../api/parse-event.js';
import { useApi } from '../auth/session.js';
import type { LiveState } from '../devices/use-fleet-events.js';
import { type LogLine, appendBounded, toLogLine } from './log-lines.js';

/** The most lines a page keeps: the newest win, so a chatty device cannot fill the browser's memory. */
export const MAX_LINES = 5_000;
const TAIL = 200;

/**
 * Follows a device's logs (`GET /devices/:uuid/logs?follow=1`, events `log`). While paused, lines keep arriving
 * and wait (bounded too); resuming shows them. A reconnection asks for the recent tail again and starts the list
 * over from it, so lines from before the break are not shown twice.
 */
export function useLogStream(uuid: string, paused: boolean) {
  const api = useApi();
  const [lines, setLines] = useState<LogLine[]>([]);
  const [state, setState] = useState<LiveState>('connecting');
  const waiting = useRef<LogLine[]>([]);
  const pausedRef = useRef(paused);
  pausedRef.current = paused;

  useEffect(() => {
    let seq = 0;
    let batch: LogLine[] = [];
    let flush: ReturnType<typeof setTimeout> | null = null;
    let fresh = true;
    setLines([]);
    waiting.current = [];
    // Lines come in bursts; they are shown in batches of one frame at most, not one render per line.
    const show = () => {
      flush = null;
      const added = batch;
      batch = [];
      const restart = fresh;
      fresh = false;
      if (pausedRef.current) {
        waiting.current = appendBounded(restart ? [] : waiting.current, added, MAX_LINES);
        if (restart) setLines([]);
      } else setLines((all) => appendBounded(restart ? [] : all, added, MAX_LINES));
    };
    const stream = new LiveStream({
      url: `${path(USER_ROUTES.deviceLogs.path, { uuid })}?follow=1&tail=${TAIL}`,
      events: {
        log: (data) => {
          const entry = parseEvent(logEntrySchema, data, 'log');
          if (!entry) return;
          batch.push(toLogLine(seq++, entry));
          flush ??= setTimeout(show, 50);
        },
      },
      onOpen: (reconnected) => {
        setState('live');
        if (reconnected) fresh = true;
      },
      onDown: () => {
        setState('down');
        api.call(USER_ROUTES.csrfToken).catch(() => undefined);
      },
    });
    stream.start();
    return () => {
      stream.close();
      if (flush) clearTimeout(flush);
    };
  }, [uuid, api]);

  useEffect(() => {
    if (paused || waiting.current.length === 0) return;
    const held = waiting.current;
    waiting.current = [];
    setLines((all) => appendBounded(all, held, MAX_LINES));
  }, [paused]);

  return { lines, state };
}
