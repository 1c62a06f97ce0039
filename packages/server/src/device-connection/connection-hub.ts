import type { WebSocket } from 'ws';
import type { ServerMessage } from '@flotilla/protocol';

/**
 * The devices connected to this server node, and callers waiting for an action to be delivered or answered.
 * Connections are per node; the server bus (bus/event-bus.ts) carries actions and answers between nodes.
 */
export class ConnectionHub {
  private readonly sockets = new Map<number, WebSocket>();
  /** Callers waiting for `delivered:<id>` or `settled:<id>`. */
  private readonly waiters = new Map<string, Set<(value: boolean) => void>>();

  attach(deviceId: number, socket: WebSocket): void {
    // A device has one connection; a newer one (after a NAT rebinding) replaces a stale one.
    const previous = this.sockets.get(deviceId);
    if (previous && previous !== socket) previous.terminate();
    this.sockets.set(deviceId, socket);
  }

  detach(deviceId: number, socket: WebSocket): void {
    if (this.sockets.get(deviceId) === socket) this.sockets.delete(deviceId);
  }

  connectedDeviceIds(): number[] {
    return [...this.sockets.keys()];
  }

  /** The device's current connection to this node, if any (a newer one replaces an older one). */
  socketOf(deviceId: number): WebSocket | undefined {
    return this.sockets.get(deviceId);
  }

  isConnected(deviceId: number): boolean {
    return this.sockets.has(deviceId);
  }

  connectedCount(): number {
    return this.sockets.size;
  }

  /** True when the message was handed to an open connection. */
  send(deviceId: number, message: ServerMessage): boolean {
    const socket = this.sockets.get(deviceId);
    if (!socket || socket.readyState !== socket.OPEN) return false;
    socket.send(JSON.stringify(message));
    return true;
  }

  /** Action `id` reached its device (here or on another node): wakes whoever waits for that. */
  delivered(id: number): void {
    this.signal(`delivered:${id}`, true);
  }

  /** The device answered action `id` (the answer is recorded): wakes whoever waits for that. */
  settled(id: number): void {
    this.signal(`settled:${id}`, true);
  }

  /** Ends every wait for action `id` now, unanswered (the action could not be handed over). */
  forget(id: number): void {
    this.signal(`delivered:${id}`, false);
    this.signal(`settled:${id}`, false);
  }

  /** True once action `id` reached its device, false after `timeoutMs`. */
  waitForDelivery(id: number, timeoutMs: number): Promise<boolean> {
    return this.wait(`delivered:${id}`, timeoutMs);
  }

  /** True once the device answered action `id`, false after `timeoutMs`. */
  waitForAnswer(id: number, timeoutMs: number): Promise<boolean> {
    return this.wait(`settled:${id}`, timeoutMs);
  }

  private signal(key: string, value: boolean): void {
    for (const waiter of this.waiters.get(key) ?? []) waiter(value);
    this.waiters.delete(key);
  }

  private wait(key: string, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      let set = this.waiters.get(key);
      if (!set) {
        set = new Set();
        this.waiters.set(key, set);
      }
      const waiter = (value: boolean) => {
        clearTimeout(timer);
        set.delete(waiter);
        if (set.size === 0 && this.waiters.get(key) === set) this.waiters.delete(key);
        resolve(value);
      };
      const timer = setTimeout(() => waiter(false), timeoutMs);
      set.add(waiter);
    });
  }

  closeAll(): void {
    for (const socket of this.sockets.values()) socket.terminate();
    this.sockets.clear();
  }
}
