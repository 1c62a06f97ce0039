import type { WebSocket } from 'ws';
import type { ActionResultMessage, ServerMessage } from '@flotilla/protocol';

/**
 * The devices connected to this server node, and callers waiting for an action's result.
 * WARNING: connections are per node; behind a load balancer an action created on another node reaches the device
 * when it reconnects (pending actions are in the database), not at once.
 */
export class ActionHub {
  private readonly sockets = new Map<number, WebSocket>();
  private readonly waiters = new Map<number, Set<(result: ActionResultMessage | undefined) => void>>();

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

  resolve(result: ActionResultMessage): void {
    for (const waiter of this.waiters.get(result.id) ?? []) waiter(result);
    this.waiters.delete(result.id);
  }

  /** Ends every wait for action `id` now, with no answer (the action could not be handed over). */
  forget(id: number): void {
    for (const waiter of this.waiters.get(id) ?? []) waiter(undefined);
    this.waiters.delete(id);
  }

  /** The device's answer to action `id`, or undefined after `timeoutMs`. */
  waitFor(id: number, timeoutMs: number): Promise<ActionResultMessage | undefined> {
    return new Promise((resolve) => {
      let set = this.waiters.get(id);
      if (!set) {
        set = new Set();
        this.waiters.set(id, set);
      }
      const waiter = (result: ActionResultMessage | undefined) => {
        clearTimeout(timer);
        set.delete(waiter);
        resolve(result);
      };
      const timer = setTimeout(() => waiter(undefined), timeoutMs);
      set.add(waiter);
    });
  }

  closeAll(): void {
    for (const socket of this.sockets.values()) socket.terminate();
    this.sockets.clear();
  }
}
