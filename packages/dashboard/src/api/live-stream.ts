/**
 * A Server-Sent Events subscription that survives a broken connection: on error it closes the EventSource, waits
 * (backing off up to the last delay), opens a new one, and tells its owner on every open so the owner refetches
 * what it shows. INVARIANT: the server does not replay events missed while the connection was down, so `onOpen`
 * after a reconnection is the only way the screen catches up; the owner must refetch there.
 */

/** The part of the browser's EventSource used here (a test passes a small stand-in). */
export interface EventSourceLike {
  addEventListener(type: string, listener: (event: { data?: unknown }) => void): void;
  close(): void;
}
export type EventSourceFactory = (url: string) => EventSourceLike;

export interface LiveStreamOptions {
  url: string;
  /** Handlers by event type; each receives the raw `data` text. */
  events: Record<string, (data: string) => void>;
  /** The stream is open; `reconnected` is false the first time. */
  onOpen?: (reconnected: boolean) => void;
  /** The stream broke; a new attempt follows after the next delay. */
  onDown?: () => void;
  open?: EventSourceFactory;
  /** Waits before each new attempt after consecutive failures; the last one repeats. */
  retryDelaysMs?: readonly number[];
}

export const RETRY_DELAYS_MS = [1_000, 2_000, 5_000, 10_000] as const;

export class LiveStream {
  private source: EventSourceLike | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private failures = 0;
  private opened = false;
  private closed = false;

  constructor(private readonly options: LiveStreamOptions) {}

  start(): void {
    if (this.closed || this.source) return;
    const open = this.options.open ?? ((url: string) => new EventSource(url));
    const source = open(this.options.url);
    this.source = source;
    source.addEventListener('open', () => {
      if (this.source !== source) return;
      this.failures = 0;
      this.options.onOpen?.(this.opened);
      this.opened = true;
    });
    source.addEventListener('error', () => {
      if (this.source !== source) return;
      // The browser would retry on its own, but without telling when it is back; this stream retries itself.
      source.close();
      this.source = null;
      this.options.onDown?.();
      this.retryLater();
    });
    for (const [type, handler] of Object.entries(this.options.events)) {
      source.addEventListener(type, (event) => {
        if (this.source === source && typeof event.data === 'string') handler(event.data);
      });
    }
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.source?.close();
    this.source = null;
  }

  private retryLater(): void {
    if (this.closed) return;
    const delays = this.options.retryDelaysMs ?? RETRY_DELAYS_MS;
    const delay = delays[Math.min(this.failures, delays.length - 1)] ?? 1_000;
    this.failures++;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.start();
    }, delay);
  }
}
