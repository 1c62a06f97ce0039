import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { userFromCredential, type UserPrincipal } from '../auth/principal.js';
import type { Db } from '../db/database.js';

const HEARTBEAT_MS = 15_000;
/**
 * Bytes a follower may leave unread before its stream is ended (it reconnects and refetches): a client that stops
 * reading must not make this node hold a device's log, or the news of a 10,000-device fleet, for it.
 */
export const MAX_UNREAD_BYTES = 16 * 1024 * 1024;

export interface EventStream {
  /** Writes one event (or comment) as it is; ends the stream when the client has fallen too far behind. */
  write(text: string): void;
  end(): void;
}

/**
 * The user's long-lived Server-Sent Events streams of one route module (log follow, fleet events): each a hijacked
 * reply with a heartbeat, ended when the client leaves, when it leaves MAX_UNREAD_BYTES unread, when the server
 * closes, and, INVARIANT, as soon as the credential that opened it is deleted or `stillAllowed` (judged again with
 * the user's fresh roles on every membership change, auth/user-streams.ts) says the user may no longer see it.
 */
export class EventStreams {
  private readonly open = new Set<() => void>();

  constructor(
    private readonly app: FastifyInstance,
    private readonly db: Db,
  ) {
    // Ended before the server closes, or close() would wait for them forever.
    app.addHook('preClose', async () => {
      for (const end of [...this.open]) end();
    });
  }

  start(options: {
    request: FastifyRequest;
    reply: FastifyReply;
    user: UserPrincipal;
    /** Whether the user, as they are now, may still see what the stream shows. */
    stillAllowed: (fresh: UserPrincipal) => Promise<boolean>;
    onEnd: () => void;
  }): EventStream {
    const { request, reply, user } = options;
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    const write = (text: string) => {
      raw.write(text);
      if (raw.writableLength > MAX_UNREAD_BYTES) end();
    };
    const heartbeat = setInterval(() => write(': heartbeat\n\n'), HEARTBEAT_MS);
    const unwatch = this.app.userStreams.watch({
      userId: user.userId,
      credential: user.credential,
      stillAllowed: async () => {
        const fresh = await userFromCredential(this.db, user.credential);
        return fresh !== undefined && options.stillAllowed(fresh);
      },
      end: () => end(),
    });
    const end = () => {
      if (!this.open.delete(end)) return;
      clearInterval(heartbeat);
      unwatch();
      options.onEnd();
      raw.end();
    };
    this.open.add(end);
    request.raw.on('close', end);
    return { write, end };
  }
}
