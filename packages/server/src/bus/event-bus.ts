import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Db, TargetChangeFeed } from '../db/database.js';

/**
 * What one server node tells the others. Only ids travel (PostgreSQL caps a notification at 8,000 bytes); the
 * receiving node reads what it needs from the shared database.
 */
const busMessageSchema = z.discriminatedUnion('type', [
  /** Device `deviceId` sent lines with ids in (afterId, lastId]. */
  z.object({
    type: z.literal('logs'),
    deviceId: z.number().int(),
    afterId: z.number().int(),
    lastId: z.number().int(),
  }),
  /** Action `actionId` was queued for `deviceId`: the node holding the device's connection hands it over. */
  z.object({ type: z.literal('action'), deviceId: z.number().int(), actionId: z.number().int() }),
  /** Action `actionId` reached its device. */
  z.object({ type: z.literal('action-delivered'), actionId: z.number().int() }),
  /** The device answered action `actionId` (the answer is in the database). */
  z.object({ type: z.literal('action-settled'), actionId: z.number().int() }),
  /** An API key or session was deleted: streams it opened end (auth/user-streams.ts). */
  z.object({ type: z.literal('credential-revoked'), kind: z.enum(['api-key', 'session']), id: z.number().int() }),
  /** A user's memberships changed: their open streams are judged again. */
  z.object({ type: z.literal('user-changed'), userId: z.number().int() }),
  /** Remote-access stream `streamId` (a remote_sessions row) waits for device `deviceId`: its node asks the device. */
  z.object({ type: z.literal('stream-open'), deviceId: z.number().int(), streamId: z.string().max(64) }),
  /** The device's remote-access streams (of one kind, or all) end now, wherever they are relayed. */
  z.object({
    type: z.literal('streams-end'),
    deviceId: z.number().int(),
    kind: z.enum(['shell', 'tunnel', 'public-url']).nullable(),
    reason: z.enum(['device-deleted', 'disabled']),
  }),
  /** These devices changed (their rows are read again by nodes whose followers watch their fleets). */
  z.object({ type: z.literal('devices-changed'), ids: z.array(z.number().int()).max(1000) }),
  /** The fleet's target release changed: each of its unpinned devices changed. */
  z.object({ type: z.literal('fleet-devices-changed'), fleetId: z.number().int() }),
  /** The device left fleet `fleetId` (deleted or moved). */
  z.object({ type: z.literal('device-removed'), fleetId: z.number().int(), uuid: z.string().max(64) }),
  /** The fleet was deleted: its followers start over. */
  z.object({ type: z.literal('fleet-removed'), fleetId: z.number().int() }),
  /**
   * A fleet's or a device's revision was bumped and committed (db/revisions.ts): the connected devices it concerns
   * are told. Sent by the database itself (migration 0014's trigger), to every node, the writer's included.
   */
  z.object({ type: z.literal('targets-changed'), kind: z.enum(['fleet', 'device']), id: z.number().int() }),
]);
export type BusMessage = z.infer<typeof busMessageSchema>;
/**
 * What subscribers hear: other nodes' messages, and `resync` after this node's bus connection came back, since
 * whatever was said while it was down is lost: subscribers catch up from the database.
 */
export type BusEvent = BusMessage | { type: 'resync' };

/**
 * How server nodes sharing one database tell each other what happened on their connections: a device's log lines
 * for followers elsewhere, and actions for devices connected elsewhere. A node never receives its own messages;
 * what concerns its own connections it handles directly.
 */
export interface EventBus {
  /** Whether other nodes can exist: false on SQLite, which one node owns. */
  readonly shared: boolean;
  /**
   * Whether this node hears what is said now. False while the listening connection is down: notices sent meanwhile
   * are lost, and `resync` comes once it is back. Caches that notices keep current are not trusted while false.
   */
  readonly listening: boolean;
  publish(message: BusMessage): void;
  subscribe(listener: (event: BusEvent) => void): () => void;
  start(): Promise<void>;
  close(): Promise<void>;
}

/** SQLite: one node, nobody to tell; subscribers hear only the database's revision bumps (`targets-changed`). */
export class SingleNodeBus implements EventBus {
  readonly shared = false;
  /** The database's notices are function calls on this process's own connection: none can be lost. */
  readonly listening: boolean;
  constructor(private readonly targetChanges?: TargetChangeFeed) {
    this.listening = targetChanges !== undefined;
  }
  publish(): void {}
  subscribe(listener: (event: BusEvent) => void): () => void {
    return (
      this.targetChanges?.subscribe((change) => listener({ type: 'targets-changed', ...change })) ?? (() => undefined)
    );
  }
  async start(): Promise<void> {}
  async close(): Promise<void> {}
}

const CHANNEL = 'flotilla_bus';
/** Notifications per statement when several wait to be sent. */
const NOTIFY_BATCH = 100;

/**
 * PostgreSQL LISTEN/NOTIFY. One dedicated connection listens, reconnecting with backoff when it drops; messages
 * sent meanwhile are missed, so subscribers get `resync` once it is back (pending actions are offered again; a
 * follower may have missed some live lines). Notifications go out through the pool.
 */
export class PostgresBus implements EventBus {
  readonly shared = true;
  private readonly node = randomUUID();
  private readonly listeners = new Set<(event: BusEvent) => void>();
  private client: pg.Client | undefined;
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private readonly outbox: string[] = [];
  private sending: Promise<void> | undefined;

  constructor(
    private readonly connectionString: string,
    private readonly db: Db,
    private readonly log: Pick<Logger, 'warn' | 'info'>,
  ) {}

  async start(): Promise<void> {
    await this.listen();
  }

  get listening(): boolean {
    return this.client !== undefined;
  }

  /**
   * INVARIANT: other nodes get this node's messages in the order published (a follower's log lines, in order). One
   * send at a time; messages published meanwhile go out together, in order, in the next statement. Sent one by one
   * through the pool, two notifications could commit on two connections in either order.
   */
  publish(message: BusMessage): void {
    this.outbox.push(JSON.stringify({ node: this.node, message }));
    this.sending ??= this.send().finally(() => {
      this.sending = undefined;
    });
  }

  private async send(): Promise<void> {
    while (this.outbox.length > 0) {
      const batch = this.outbox.splice(0, NOTIFY_BATCH);
      const notify = batch.map((payload) => sql`pg_notify(${CHANNEL}, ${payload})`);
      await sql`select ${sql.join(notify)}`.execute(this.db).catch((error: unknown) => {
        this.log.warn(
          { err: (error as Error).message, messages: batch.length },
          'telling the other server nodes failed',
        );
      });
    }
  }

  subscribe(listener: (event: BusEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    await this.sending;
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private async listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.connectionString, application_name: 'flotilla-bus' });
    client.on('notification', (notification) => this.receive(notification.payload));
    client.on('error', () => this.lost(client));
    client.on('end', () => this.lost(client));
    await client.connect();
    await client.query(`LISTEN ${CHANNEL}`);
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    const recovered = this.failures > 0;
    this.failures = 0;
    if (recovered) {
      this.log.info('server bus listening again');
      this.emit({ type: 'resync' });
    }
  }

  private lost(client: pg.Client): void {
    if (this.closed || this.client !== client) return;
    this.client = undefined;
    client.end().catch(() => undefined);
    this.retry();
  }

  private retry(): void {
    if (this.closed) return;
    const delay = Math.min(10_000, 250 * 2 ** this.failures);
    this.failures = Math.min(this.failures + 1, 10);
    if (this.failures === 1) this.log.warn('server bus connection lost; reconnecting');
    this.retryTimer = setTimeout(() => {
      this.listen().catch(() => this.retry());
    }, delay);
    this.retryTimer.unref();
  }

  private receive(payload: string | undefined): void {
    let parsed: { node?: unknown; message?: unknown };
    try {
      parsed = JSON.parse(payload ?? '') as typeof parsed;
    } catch {
      return;
    }
    // node null: the database's own notices (targets-changed), for every node.
    if (parsed.node === this.node) return;
    const message = busMessageSchema.safeParse(parsed.message);
    if (message.success) this.emit(message.data);
  }

  private emit(event: BusEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.log.warn({ err: (error as Error).message }, 'a bus listener failed');
      }
    }
  }
}
