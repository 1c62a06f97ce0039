import type { LogEntry } from '@flotilla/protocol';

type Listener = (entries: LogEntry[]) => void;

/**
 * Live log fan-out inside one server process: ingest publishes, followers (SSE) subscribe per device. Lines
 * ingested by other server nodes arrive through the server bus (see routes.ts).
 */
export class LogHub {
  private readonly listeners = new Map<number, Set<Listener>>();

  publish(deviceId: number, entries: LogEntry[]): void {
    for (const listener of this.listeners.get(deviceId) ?? []) listener(entries);
  }

  subscribe(deviceId: number, listener: Listener): () => void {
    let set = this.listeners.get(deviceId);
    if (!set) {
      set = new Set();
      this.listeners.set(deviceId, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(deviceId);
    };
  }

  followers(deviceId: number): number {
    return this.listeners.get(deviceId)?.size ?? 0;
  }
}
