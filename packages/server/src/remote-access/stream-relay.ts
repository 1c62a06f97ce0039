import type { RawData, WebSocket } from 'ws';

/** Above this many bytes handed to one side's socket and not yet written out, the relay stops reading the other. */
export const RELAY_HIGH_WATER = 1024 * 1024;
const RELAY_LOW_WATER = 256 * 1024;

export interface RelayCounters {
  /** Bytes of frames from `a` to `b`, and back. */
  aToB: number;
  bToA: number;
}

/**
 * Relays frames between two WebSockets unchanged (binary stays binary, text stays text) until either closes, then
 * closes the other with the same code. Returns the byte counters, live, and a promise settled when both are done.
 *
 * INVARIANT (bounded memory): at most RELAY_HIGH_WATER bytes (plus one frame) wait in this process per direction.
 * Each send is counted until ws reports it written to the socket; while a direction is over the mark its source
 * is paused (ws stops reading, the kernel buffers fill, and TCP slows the sender down), so a reader that stops
 * reading stalls its writer instead of growing the server.
 */
export function relayWebSockets(a: WebSocket, b: WebSocket): { counters: RelayCounters; done: Promise<void> } {
  const counters: RelayCounters = { aToB: 0, bToA: 0 };
  pipeFrames(a, b, (n) => {
    counters.aToB += n;
  });
  pipeFrames(b, a, (n) => {
    counters.bToA += n;
  });
  const done = Promise.all([closed(a), closed(b)]).then(() => undefined);
  return { counters, done };
}

type Frame = [data: RawData, isBinary: boolean];
const heldFrames = new WeakMap<WebSocket, { frames: Frame[]; listener: (data: RawData, isBinary: boolean) => void }>();

/**
 * Stops reading `socket` and keeps the frames ws had already read, until a relay (or `release`) takes them.
 * WARNING: ws drops frames that arrive while no 'message' listener is attached, and a socket is often accepted
 * before its peer is known (a database read, the device's dial); so every socket is held at once on arrival.
 */
export function holdFrames(socket: WebSocket): void {
  if (heldFrames.has(socket)) return;
  const frames: Frame[] = [];
  const listener = (data: RawData, isBinary: boolean) => frames.push([data, isBinary]);
  socket.on('message', listener);
  heldFrames.set(socket, { frames, listener });
  socket.pause();
}

/** Hands the frames held since holdFrames to `onFrame`, then every later one, and reads the socket again. */
export function releaseFrames(socket: WebSocket, onFrame: (data: RawData, isBinary: boolean) => void): void {
  const held = heldFrames.get(socket);
  heldFrames.delete(socket);
  if (held) socket.off('message', held.listener);
  socket.on('message', onFrame);
  // Resumed before the held frames are replayed, so that `onFrame` may pause it again; no event can come in
  // between, the replay being synchronous, so the order of frames is kept.
  socket.resume();
  for (const [data, isBinary] of held?.frames ?? []) onFrame(data, isBinary);
}

function pipeFrames(from: WebSocket, to: WebSocket, count: (bytes: number) => void): void {
  let unsent = 0;
  releaseFrames(from, (data: RawData, isBinary: boolean) => {
    if (to.readyState !== to.OPEN) return;
    const size = byteLength(data);
    count(size);
    unsent += size;
    to.send(data, { binary: isBinary }, () => {
      unsent -= size;
      if (unsent < RELAY_LOW_WATER && from.isPaused) from.resume();
    });
    if (unsent > RELAY_HIGH_WATER && !from.isPaused) from.pause();
  });
  from.on('close', (code, reason) => closeWith(to, code, reason.toString()));
  from.on('error', () => to.terminate());
}

/** Closes `socket` passing on a peer's close code where the protocol lets it be sent again. */
export function closeWith(socket: WebSocket, code: number, reason = ''): void {
  if (socket.readyState === socket.CLOSED || socket.readyState === socket.CLOSING) return;
  // 1005 (no code) and 1006 (dropped) describe what happened to the peer; they may not be sent.
  const sendable = code === 1000 || (code >= 1001 && code <= 1014 && code !== 1005 && code !== 1006) || code >= 3000;
  socket.close(sendable ? code : 1000, reason.slice(0, 120));
  // A peer that never answers the close handshake is cut after a while.
  setTimeout(() => socket.terminate(), 5_000).unref();
}

function closed(socket: WebSocket): Promise<void> {
  if (socket.readyState === socket.CLOSED) return Promise.resolve();
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

export function byteLength(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((sum, part) => sum + part.length, 0);
  return data instanceof ArrayBuffer ? data.byteLength : data.length;
}
