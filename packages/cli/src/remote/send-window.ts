import type WebSocket from 'ws';

/** What a window pauses while too much is unsent: a local socket, stdin. */
export interface Pausable {
  pause(): unknown;
  resume(): unknown;
}

/** How much may wait unsent in the WebSocket before the source is paused. */
export const SEND_WINDOW_BYTES = 1024 * 1024;

/**
 * Sends binary frames and pauses `source` while more than `limit` bytes are queued in the WebSocket, resuming it once
 * half of that has reached the kernel (ws calls each send's callback then).
 * INVARIANT: the window resumes only what it paused itself, so it never undoes a pause made for another reason
 * (a tunnel connection held until the device is ready).
 */
export class SendWindow {
  private pending = 0;
  private pausedByUs = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly source: Pausable,
    private readonly limit = SEND_WINDOW_BYTES,
  ) {}

  send(frame: Uint8Array): void {
    this.pending += frame.length;
    this.ws.send(frame, { binary: true }, () => {
      this.pending -= frame.length;
      if (this.pausedByUs && this.pending <= this.limit / 2) {
        this.pausedByUs = false;
        this.source.resume();
      }
    });
    if (!this.pausedByUs && this.pending > this.limit) {
      this.pausedByUs = true;
      this.source.pause();
    }
  }
}

/**
 * Writes what the WebSocket receives to local streams (stdout, stderr, a local socket), pausing the WebSocket while
 * any of them is full (its `write` said false) until it drains, so a slow terminal or a slow local client slows the
 * device down instead of filling this process's memory.
 */
export class ReceiveGate {
  private readonly blocked = new Set<NodeJS.WritableStream>();

  constructor(private readonly ws: WebSocket) {}

  write(target: NodeJS.WritableStream, data: Buffer): void {
    if (target.write(data) || this.blocked.has(target)) return;
    this.blocked.add(target);
    if (this.blocked.size === 1) this.ws.pause();
    target.once('drain', () => {
      this.blocked.delete(target);
      if (this.blocked.size === 0) this.ws.resume();
    });
  }
}
