import { type DeviceAction, USER_ROUTES } from '@flotilla/protocol';
import { useCallback, useEffect, useRef, useState } from 'react';
import { describeError } from '../api/dashboard-api.js';
import { useApi } from '../auth/session.js';
import { ACTION_LABELS, outcomeWords } from './action-labels.js';

export interface ActionResult {
  /** Unique per click, the React key. */
  readonly key: number;
  readonly text: string;
  readonly tone: 'pending' | 'ok' | 'error';
}

const POLL_MS = 2_000;
const POLL_FOR_MS = 60_000;
const KEEP = 6;

/**
 * Sends device actions and follows each to its end: the server waits up to 5 s for the device's answer; an action
 * still pending or delivered then is polled every 2 s for a minute, its line on screen updated as it goes.
 */
export function useDeviceActions(uuid: string) {
  const api = useApi();
  const [results, setResults] = useState<ActionResult[]>([]);
  const counter = useRef(0);
  const mounted = useRef(true);
  useEffect(() => {
    mounted.current = true;
    return () => {
      mounted.current = false;
    };
  }, []);

  const run = useCallback(
    async (action: DeviceAction, service?: string) => {
      const key = ++counter.current;
      const label = service ? `${ACTION_LABELS[action]} ${service}` : ACTION_LABELS[action];
      const show = (text: string, tone: ActionResult['tone']) => {
        if (!mounted.current) return;
        setResults((all) =>
          [{ key, text: `${label}: ${text}`, tone }, ...all.filter((r) => r.key !== key)].slice(0, KEEP),
        );
      };
      show('sending…', 'pending');
      try {
        let answer = await api.call(USER_ROUTES.createDeviceAction, {
          params: { uuid },
          query: { wait: 5_000 },
          body: { action, ...(service ? { service } : {}) },
        });
        const until = Date.now() + POLL_FOR_MS;
        while (
          (answer.status === 'pending' || answer.status === 'delivered') &&
          Date.now() < until &&
          mounted.current
        ) {
          show(outcomeWords(answer.status), 'pending');
          await new Promise((resolve) => setTimeout(resolve, POLL_MS));
          answer = await api.call(USER_ROUTES.getDeviceAction, { params: { uuid, id: answer.id } });
        }
        const reason = answer.error ? ` (${answer.error.message}, ${answer.error.code})` : '';
        const tone =
          answer.status === 'done'
            ? 'ok'
            : answer.status === 'failed' || answer.status === 'expired'
              ? 'error'
              : 'pending';
        show(`${outcomeWords(answer.status)}${reason}`, tone);
      } catch (error) {
        show(describeError(error), 'error');
      }
    },
    [api, uuid],
  );

  return { results, run };
}
