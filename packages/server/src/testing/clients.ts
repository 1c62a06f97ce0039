import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { DEVICE_CONNECT_ETAG_PARAM, DEVICE_ROUTES, path, type ActionMessage, type LogEntry } from '@flotilla/protocol';

/**
 * Hands each block of a Server-Sent Events body (up to a blank line) to `onBlock`, parsed: whether it is the
 * server's `: following` comment, its event type and its JSON data; until the body ends or the request is aborted.
 */
async function eachEvent(
  response: Response,
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON events
  onBlock: (block: { following: boolean; type: string | undefined; data: any }) => void,
): Promise<void> {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let index: number;
      while ((index = buffer.indexOf('\n\n')) !== -1) {
        const block = buffer.slice(0, index);
        buffer = buffer.slice(index + 2);
        const data = /^data: (.*)$/m.exec(block)?.[1];
        onBlock({
          following: block.startsWith(': following'),
          type: /^event: (.*)$/m.exec(block)?.[1],
          data: data ? JSON.parse(data) : undefined,
        });
      }
    }
  } catch {
    // aborted
  }
}

/** Reads Server-Sent Events `log` entries from a follow request until aborted. */
export function followLogs(
  url: string,
  key: string,
  onEntry: (e: LogEntry) => void,
): { ready: Promise<void>; close: () => void } {
  const controller = new AbortController();
  const ready = (async () => {
    const response = await fetch(url, { headers: { authorization: `Bearer ${key}` }, signal: controller.signal });
    assert.equal(response.headers.get('content-type'), 'text/event-stream');
    let resolveReady!: () => void;
    const first = new Promise<void>((r) => (resolveReady = r));
    void eachEvent(response, ({ following, type, data }) => {
      if (following) resolveReady();
      if (type === 'log' && data !== undefined) onEntry(data as LogEntry);
    });
    await first;
  })();
  return { ready, close: () => controller.abort() };
}

/**
 * A device's side of the connection, honest to the protocol: answers every action, ok unless told to fail. With
 * `etag`, it says which target state it holds, as a current agent does; without, it is an agent from before that.
 */
export function connectDevice(
  url: string,
  uuid: string,
  key: string,
  answer: (m: ActionMessage) => { ok: boolean; error?: { code: string; message: string } } = () => ({ ok: true }),
  options: { etag?: string | undefined } = {},
) {
  const received: ActionMessage[] = [];
  const address = new URL(path(DEVICE_ROUTES.connect.path, { uuid }), url.replace('http', 'ws'));
  if (options.etag !== undefined) address.searchParams.set(DEVICE_CONNECT_ETAG_PARAM, options.etag);
  const socket = new WebSocket(address, { headers: { authorization: `Bearer ${key}` } });
  const announcements: string[] = [];
  socket.on('message', (data) => {
    const message = JSON.parse(data.toString()) as ActionMessage | { type: 'target-changed' };
    if (message.type !== 'action') {
      announcements.push(message.type);
      return;
    }
    received.push(message);
    socket.send(JSON.stringify({ type: 'action-result', id: message.id, ...answer(message) }));
  });
  const opened = new Promise<void>((resolve, reject) => {
    socket.on('open', () => resolve());
    socket.on('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    socket.on('error', reject);
  });
  return { received, announcements, opened, close: () => socket.close() };
}

/** The device's fetch of its target state (`GET /device/v3/:uuid/state`): the ETag it then holds. */
export async function fetchTargetEtag(url: string, uuid: string, key: string): Promise<string> {
  const response = await fetch(`${url}${path(DEVICE_ROUTES.targetState.path, { uuid })}`, {
    headers: { authorization: `Bearer ${key}` },
  });
  await response.arrayBuffer();
  const etag = response.headers.get('etag');
  assert.ok(response.status === 200 && etag, `target state: HTTP ${response.status}`);
  return etag;
}

export interface ServerEvent {
  type: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON events
  data: any;
  /** performance.now() when it arrived. */
  at: number;
}

/**
 * Reads a Server-Sent Events stream (the fleet's device feed) into `events` until closed. `ready` resolves once the
 * server said it follows (`: following`), `ended` when the server ends the stream.
 */
export function readEventStream(url: string, headers: Record<string, string>) {
  const controller = new AbortController();
  const events: ServerEvent[] = [];
  let resolveReady!: () => void;
  let rejectReady!: (error: Error) => void;
  const ready = new Promise<void>((resolve, reject) => {
    resolveReady = resolve;
    rejectReady = reject;
  });
  const ended = (async () => {
    const response = await fetch(url, { headers, signal: controller.signal });
    if (response.status !== 200 || response.headers.get('content-type') !== 'text/event-stream') {
      rejectReady(new Error(`not a stream: ${response.status} ${await response.text()}`));
      return;
    }
    await eachEvent(response, ({ following, type, data }) => {
      if (following) resolveReady();
      if (type && data !== undefined) events.push({ type, data, at: performance.now() });
    });
  })();
  ended.catch((error: unknown) => rejectReady(error as Error));
  return { events, ready, ended, close: () => controller.abort() };
}
