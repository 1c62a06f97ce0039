import WebSocket from 'ws';
import { FlotillaError, parseStreamControl, type StreamControl } from '@flotilla/protocol';
import { Flow } from './flow.js';

/** How a stream's WebSocket ended: the other side or a failure closed it, or the agent is stopping. */
export type StreamEnd = 'closed' | 'stopped';

/** What the user's frames are handed to. */
export interface StreamHandlers {
  /** A binary frame, as it came (shell frames still carry their channel byte). */
  data(frame: Buffer): void;
  control(message: StreamControl): void;
}

/** The error frame for a failure: a FlotillaError's code, a refused or unreachable connection, else INTERNAL. */
export function streamError(error: unknown): { code: string; message: string } {
  if (error instanceof FlotillaError) return { code: error.code, message: error.message.slice(0, 2_000) };
  const errno = (error as NodeJS.ErrnoException | undefined)?.code;
  const message = (error instanceof Error ? error.message : String(error)).slice(0, 2_000);
  if (errno === 'ECONNREFUSED' || errno === 'EHOSTUNREACH' || errno === 'ENETUNREACH' || errno === 'ETIMEDOUT')
    return { code: 'NETWORK_ERROR', message };
  return { code: 'INTERNAL', message };
}

/**
 * The device's half of one stream: one dialled WebSocket, its flow control, and how it ends. Handlers are set once
 * the local end exists; frames arriving before are not lost, as the socket is not read until then.
 */
export class StreamSocket {
  readonly flow: Flow;
  private ended: StreamEnd | undefined;
  private readonly endListeners: Array<(how: StreamEnd) => void> = [];
  /** Resolves once the WebSocket has closed and every end listener has run. */
  readonly done: Promise<void>;

  constructor(private readonly ws: WebSocket) {
    this.flow = new Flow(ws);
    ws.pause();
    this.done = new Promise((resolve) => {
      ws.once('close', () => {
        this.ended ??= 'closed';
        for (const listener of this.endListeners.splice(0)) listener(this.ended);
        resolve();
      });
    });
    ws.on('error', () => undefined); // 'close' follows
  }

  /** Starts reading the user's frames. */
  listen(handlers: StreamHandlers): void {
    this.ws.on('message', (data, isBinary) => {
      // Once closing, the local end is done with (or gone): what still arrives is dropped.
      if (this.ws.readyState !== WebSocket.OPEN || !Buffer.isBuffer(data)) return; // nodebuffer: a Buffer, whole
      if (isBinary) handlers.data(data);
      else {
        const message = parseStreamControl(data.toString('utf8'));
        if (message) handlers.control(message);
      }
    });
    this.ws.resume();
  }

  /** Runs when the stream ends; at once when it already has. */
  onEnd(listener: (how: StreamEnd) => void): void {
    if (this.ended && this.ws.readyState === WebSocket.CLOSED) listener(this.ended);
    else this.endListeners.push(listener);
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  control(message: StreamControl): void {
    this.flow.send(JSON.stringify(message));
  }

  /** Says why the stream failed, then closes it. */
  fail(error: unknown): void {
    this.control({ type: 'error', ...streamError(error) });
    this.close();
  }

  /** Closes after what was sent (the close frame follows the queued frames). */
  close(): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.close(1000);
    // Read again (a full sink or listen() not reached may have paused it), or the peer's close frame is never seen.
    this.ws.resume();
  }

  /** The agent stops: the stream ends now, and its local end is torn down without grace. */
  stop(): void {
    this.ended ??= 'stopped';
    this.ws.terminate();
  }
}
