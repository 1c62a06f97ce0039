import { FlotillaError } from '@flotilla/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { sessionCookieOf } from './browser-session.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The one GuessLimiter of this app (see guess-limiter.ts). */
    guessLimiter: GuessLimiter;
  }
}

/** How many wrong secrets are let through before answering RATE_LIMITED, and for how long. */
export interface GuessLimits {
  /** Wrong passwords per (username, source address) before backoff starts. */
  freePasswordFailures: number;
  /** First block after the free failures; doubles with each further failure. */
  passwordBackoffMs: number;
  /** Longest block of one (username, source address). */
  maxPasswordBackoffMs: number;
  /** Wrong keys, tokens or passwords per source address within `sourceWindowMs` before the address is blocked. */
  sourceFailures: number;
  sourceWindowMs: number;
  /** Entries kept at most (each is a few dozen bytes); the oldest are dropped first beyond it. */
  maxEntries: number;
}

export const DEFAULT_GUESS_LIMITS: GuessLimits = {
  freePasswordFailures: 5,
  passwordBackoffMs: 1_000,
  maxPasswordBackoffMs: 15 * 60_000,
  sourceFailures: 300,
  sourceWindowMs: 5 * 60_000,
  maxEntries: 100_000,
};

interface PasswordEntry {
  failures: number;
  blockedUntil: number;
  lastFailure: number;
}
interface SourceEntry {
  failures: number;
  windowStart: number;
}

/**
 * Counts wrong secrets and refuses further attempts with RATE_LIMITED (and `retryAfterSeconds` for Retry-After).
 * Every place a password, API key, session token, device key or provisioning key is checked goes through here.
 *
 * INVARIANT: only failures count, so legitimate traffic is never slowed; a password's failures are counted per
 * (username, source address), so a guesser elsewhere cannot lock the real user out; every failure, password or key,
 * also counts against its source address, which stops one address from spraying many usernames or keys. Counts live
 * in this process: each server node counts on its own.
 */
export class GuessLimiter {
  private readonly passwords = new Map<string, PasswordEntry>();
  private readonly sources = new Map<string, SourceEntry>();

  constructor(
    readonly limits: GuessLimits = DEFAULT_GUESS_LIMITS,
    private readonly clock: () => number = Date.now,
  ) {}

  /**
   * Runs `check` (a password check for `username`) unless the pair or the address is blocked; a check that answers
   * false or throws INVALID_CREDENTIALS counts as a failure, a true one forgets the pair's failures.
   */
  async password<T>(username: string, source: string, check: () => Promise<T | undefined>): Promise<T | undefined> {
    const key = `${username.toLowerCase()}\n${source}`;
    this.refuseIfBlocked(source, this.passwords.get(key)?.blockedUntil ?? 0);
    const result = await this.counting(check, () => this.passwordFailed(key, source));
    if (result !== undefined) this.passwords.delete(key);
    return result;
  }

  /** Runs `check` (a key or token lookup) unless the address is blocked; undefined from it counts as a failure. */
  async key<T>(source: string, check: () => Promise<T | undefined>): Promise<T | undefined> {
    this.refuseIfBlocked(source, 0);
    return this.counting(check, () => this.sourceFailed(source));
  }

  /** Counts one wrong key or token presented from `source`. */
  keyFailed(source: string): void {
    this.sourceFailed(source);
  }

  /** Throws RATE_LIMITED when the address is blocked, without counting anything. */
  refuseIfBlocked(source: string, until: number): void {
    const at = this.clock();
    const entry = this.sources.get(source);
    const sourceUntil =
      entry && entry.failures >= this.limits.sourceFailures ? entry.windowStart + this.limits.sourceWindowMs : 0;
    const blockedUntil = Math.max(until, sourceUntil);
    if (blockedUntil <= at) return;
    const seconds = Math.max(1, Math.ceil((blockedUntil - at) / 1000));
    throw new FlotillaError('RATE_LIMITED', `too many failed attempts; retry in ${seconds} s`, {
      details: { retryAfterSeconds: seconds },
    });
  }

  private async counting<T>(check: () => Promise<T | undefined>, failed: () => void): Promise<T | undefined> {
    let result: T | undefined;
    try {
      result = await check();
    } catch (error) {
      if (error instanceof FlotillaError && (error.code === 'INVALID_CREDENTIALS' || error.code === 'UNAUTHENTICATED'))
        failed();
      throw error;
    }
    if (result === undefined) failed();
    return result;
  }

  private passwordFailed(key: string, source: string): void {
    const at = this.clock();
    const entry = this.fresh(this.passwords.get(key), at) ?? { failures: 0, blockedUntil: 0, lastFailure: at };
    entry.failures += 1;
    entry.lastFailure = at;
    const over = entry.failures - this.limits.freePasswordFailures;
    if (over > 0)
      entry.blockedUntil =
        at + Math.min(this.limits.maxPasswordBackoffMs, this.limits.passwordBackoffMs * 2 ** Math.min(over - 1, 30));
    this.remember(this.passwords, key, entry);
    this.sourceFailed(source);
  }

  /** A pair's failures are forgotten once it has been quiet for the longest block. */
  private fresh(entry: PasswordEntry | undefined, at: number): PasswordEntry | undefined {
    if (!entry) return undefined;
    return at - Math.max(entry.lastFailure, entry.blockedUntil) > this.limits.maxPasswordBackoffMs ? undefined : entry;
  }

  private sourceFailed(source: string): void {
    const at = this.clock();
    let entry = this.sources.get(source);
    if (!entry || at - entry.windowStart >= this.limits.sourceWindowMs) entry = { failures: 0, windowStart: at };
    entry.failures += 1;
    this.remember(this.sources, source, entry);
  }

  /** Re-inserts so Map order is least recently failed first, and drops the oldest beyond maxEntries. */
  private remember<V>(map: Map<string, V>, key: string, value: V): void {
    map.delete(key);
    map.set(key, value);
    while (map.size > this.limits.maxEntries) {
      const oldest = map.keys().next().value;
      if (oldest === undefined) break;
      map.delete(oldest);
    }
  }
}

/** Seconds a RATE_LIMITED error asks to wait, for the Retry-After header. */
export function retryAfterOf(error: FlotillaError): number | undefined {
  const details = error.details as { retryAfterSeconds?: unknown } | undefined;
  return typeof details?.retryAfterSeconds === 'number' ? details.retryAfterSeconds : undefined;
}

/**
 * Whether the request presents a bearer key or token (API key, session, device, provisioning or registry token), or
 * the dashboard's session cookie to the API (browsers send it with every request, pages and assets too).
 */
function presentsKey(request: FastifyRequest): boolean {
  if (/^Bearer\s/i.test(request.headers.authorization ?? '')) return true;
  if (request.url.startsWith('/api/') && sessionCookieOf(request) !== undefined) return true;
  const query = request.query as Record<string, unknown> | undefined;
  return typeof query?.apikey === 'string';
}

/**
 * Installs `limiter` on the app: every request presenting a bearer key from a blocked address is refused before any
 * route runs, and every 401 answered to such a request counts as a failed key presentation. Doing it here rather
 * than in each route means no key check (user API, device API, provisioning, log stream, device connection,
 * registry token) can be added without being counted. Passwords (login, registry Basic) are checked through
 * `limiter.password` where the username is known.
 */
export function installGuessLimiter(app: FastifyInstance, limiter: GuessLimiter): void {
  app.decorate('guessLimiter', limiter);
  // Callback hooks, not async ones: they run on every request (every device poll), and an async hook costs a
  // promise and a turn of the microtask queue each.
  app.addHook('onRequest', (request, _reply, done) => {
    try {
      if (presentsKey(request)) limiter.refuseIfBlocked(request.ip, 0);
    } catch (error) {
      done(error as Error);
      return;
    }
    done();
  });
  app.addHook('onResponse', (request, reply, done) => {
    if (reply.statusCode === 401 && presentsKey(request)) limiter.keyFailed(request.ip);
    done();
  });
}
