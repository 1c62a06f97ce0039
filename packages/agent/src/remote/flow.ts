import WebSocket from 'ws';

/** Unconfirmed bytes on the WebSocket above which the local sources are paused, and below which they resume. */
export const HIGH_WATER_BYTES = 1024 * 1024;
export const LOW_WATER_BYTES = 256 * 1024;

/** What produces the device's side of a stream and can stop for a while: a TCP socket, a pty, a Readable. */
export interface Source {
  pause(): unknown;
  resume(): unknown;
}

/** What takes the user's side of a stream: false from write() means full until 'drain' (net.Socket, Writable). */
export interface Sink {
  write(data: Buffer): boolean;
  once(event: 'drain', listener: () => void): unknown;
}

/**
 * Back-pressure between one stream's WebSocket and its local ends, both ways, so a slow side never makes the agent
 * buffer without bound:
 * - device → user: `send()` counts the bytes handed to the WebSocket until its send callback confirms them written
 *   to the connection; above the high-water mark every source is paused, below the low mark they resume;
 * - user → device: `deliver()` writes to the sink, and while the sink is full the WebSocket is not read (ws.pause()),
 *   so the relay, and TCP behind it, hold the user back.
 * INVARIANT: at most the high-water mark plus one source chunk is queued towards the user, and at most one
 * WebSocket read's worth plus the sink's own high-water mark towards the local end.
 */
export class Flow {
  private unconfirmed = 0;
  private sourcesPaused = false;
  private readonly sources: Source[] = [];
  private sinkFull = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly high = HIGH_WATER_BYTES,
    private readonly low = LOW_WATER_BYTES,
  ) {}

  /** Bytes given to send() and not yet written to the connection. */
  get pending(): number {
    return this.unconfirmed;
  }

  /** A source whose data goes out through send(). */
  source(source: Source): void {
    this.sources.push(source);
    if (this.sourcesPaused) source.pause();
  }

  /** Sends a frame (binary for bytes, text for a string); dropped once the WebSocket is closing. */
  send(data: Uint8Array | string): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    const size = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
    this.unconfirmed += size;
    // ws calls back once the frame is written to the connection, or with an error when it closed first.
    this.ws.send(data, () => {
      this.unconfirmed -= size;
      if (this.sourcesPaused && this.unconfirmed <= this.low) {
        this.sourcesPaused = false;
        for (const s of this.sources) s.resume();
      }
    });
    if (!this.sourcesPaused && this.unconfirmed > this.high) {
      this.sourcesPaused = true;
      for (const s of this.sources) s.pause();
    }
  }

  /** Writes what the user sent to `sink`; while the sink is full, the WebSocket is not read. */
  deliver(sink: Sink, data: Buffer): void {
    if (sink.write(data) || this.sinkFull) return;
    this.sinkFull = true;
    this.ws.pause();
    sink.once('drain', () => {
      this.sinkFull = false;
      this.ws.resume();
    });
  }
}
