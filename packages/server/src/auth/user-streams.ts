import type { FastifyInstance } from 'fastify';
import type { EventBus } from '../bus/event-bus.js';
import type { UserCredential } from './principal.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Long-lived user connections of this node, closed when what allowed them is revoked (user-streams.ts). */
    userStreams: UserStreams;
  }
}

interface Stream {
  userId: number;
  credential: UserCredential;
  /** Whether the stream may stay open, judged afresh from the database (credential valid, resource visible). */
  stillAllowed: () => Promise<boolean>;
  end: () => void;
}

/** How often every open stream is judged again, catching expiry and anything a lost bus message did not say. */
const RECHECK_MS = 30_000;

/**
 * The user connections that outlive their request (log follow streams), so that revoking a credential or a
 * membership closes them at once rather than when the client goes away.
 *
 * INVARIANT: whoever deletes an API key or session calls `credentialRevoked`, and whoever removes or changes a
 * membership calls `userChanged`, after the database change; both also reach the other server nodes through the
 * bus. A stream is also judged again every RECHECK_MS and after the bus reconnects.
 */
export class UserStreams {
  private readonly streams = new Set<Stream>();
  private bus: EventBus | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly onError: (error: unknown) => void) {}

  /**
   * Tracks a stream until the returned function is called (when it ends for any reason). It is judged once at
   * once: a revocation that landed between the request's authentication and this call is not missed.
   */
  watch(stream: Stream): () => void {
    this.streams.add(stream);
    this.timer ??= setInterval(() => this.recheck(() => true), RECHECK_MS).unref();
    this.judge(stream);
    return () => {
      this.streams.delete(stream);
      if (this.streams.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    };
  }

  /** The API key or session was deleted: its streams end now, on every node. */
  credentialRevoked(credential: UserCredential, fromBus = false): void {
    for (const stream of [...this.streams])
      if (stream.credential.kind === credential.kind && stream.credential.id === credential.id) stream.end();
    if (!fromBus) this.bus?.publish({ type: 'credential-revoked', kind: credential.kind, id: credential.id });
  }

  /** The user's memberships changed: each of their streams is judged again, on every node. */
  userChanged(userId: number, fromBus = false): void {
    this.recheck((stream) => stream.userId === userId);
    if (!fromBus) this.bus?.publish({ type: 'user-changed', userId });
  }

  /** Relays revocations to and from the other server nodes. */
  connect(bus: EventBus): () => void {
    this.bus = bus;
    return bus.subscribe((event) => {
      if (event.type === 'credential-revoked') this.credentialRevoked({ kind: event.kind, id: event.id }, true);
      else if (event.type === 'user-changed') this.userChanged(event.userId, true);
      else if (event.type === 'resync') this.recheck(() => true);
    });
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private recheck(which: (stream: Stream) => boolean): void {
    for (const stream of [...this.streams]) if (which(stream)) this.judge(stream);
  }

  private judge(stream: Stream): void {
    void stream.stillAllowed().then(
      (allowed) => {
        if (!allowed && this.streams.has(stream)) stream.end();
      },
      (error: unknown) => this.onError(error),
    );
  }
}

export function installUserStreams(app: FastifyInstance): UserStreams {
  const streams = new UserStreams((error) => app.log.error({ err: error }, 'judging an open user stream failed'));
  app.decorate('userStreams', streams);
  app.addHook('onClose', async () => streams.close());
  return streams;
}
