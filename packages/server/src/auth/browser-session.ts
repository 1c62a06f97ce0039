import { createHmac, timingSafeEqual } from 'node:crypto';
import { CSRF_HEADER, FlotillaError, SESSION_COOKIE } from '@flotilla/protocol';
import { parseCookie, stringifySetCookie } from 'cookie';
import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * The dashboard's session cookie and what protects it (the contract is in packages/protocol/src/browser.ts).
 *
 * The cookie holds a session token (never an API key) and is HttpOnly and SameSite=Strict, so page scripts cannot
 * read it and other sites' requests do not carry it in browsers that honour SameSite. For the rest:
 * - a state-changing request authenticated by the cookie must carry CSRF_HEADER with the session's CSRF token, which
 *   another site's page can neither read nor set;
 * - a WebSocket upgrade authenticated by the cookie must come from the server's own origin, because browsers apply
 *   no same-origin rule to WebSockets.
 *
 * INVARIANT: the CSRF token is an HMAC of a fixed label keyed by the session token: every server node computes it,
 * nothing stores it, it differs from the stored hash of the token (sha256), and it reveals nothing of the token.
 */
const CSRF_LABEL = 'flotilla-csrf-v1';
const SAFE_METHODS = new Set(['GET', 'HEAD']);
/** Longest cookie value taken as a token (session tokens are far shorter). */
const MAX_TOKEN_LENGTH = 500;

export function csrfTokenFor(sessionToken: string): string {
  return createHmac('sha256', sessionToken).update(CSRF_LABEL).digest('hex');
}

/** The session token in the request's cookie, if any. */
export function sessionCookieOf(request: FastifyRequest): string | undefined {
  const header = request.headers.cookie;
  if (typeof header !== 'string' || header === '') return undefined;
  let value: string | undefined;
  try {
    value = parseCookie(header)[SESSION_COOKIE];
  } catch {
    return undefined;
  }
  return value && value.length <= MAX_TOKEN_LENGTH ? value : undefined;
}

/** Whether the browser reached the server over HTTPS, itself or through a proxy the public URL names. */
export function isSecure(request: FastifyRequest, publicUrl: string): boolean {
  return request.protocol === 'https' || publicUrl.startsWith('https:');
}

export function setSessionCookie(reply: FastifyReply, token: string, maxAgeSeconds: number, secure: boolean): void {
  void reply.header(
    'set-cookie',
    stringifySetCookie({
      name: SESSION_COOKIE,
      value: token,
      httpOnly: true,
      sameSite: 'strict',
      path: '/',
      secure,
      maxAge: Math.max(0, Math.floor(maxAgeSeconds)),
    }),
  );
}

export function clearSessionCookie(reply: FastifyReply, secure: boolean): void {
  void reply.header(
    'set-cookie',
    stringifySetCookie({
      name: SESSION_COOKIE,
      value: '',
      httpOnly: true,
      sameSite: 'strict',
      path: '/',
      secure,
      maxAge: 0,
    }),
  );
}

/** FORBIDDEN unless a state-changing cookie request carries the session's CSRF token. */
export function requireCsrf(request: FastifyRequest, sessionToken: string): void {
  if (SAFE_METHODS.has(request.method)) return;
  const presented = request.headers[CSRF_HEADER];
  const expected = Buffer.from(csrfTokenFor(sessionToken));
  const given = Buffer.from(typeof presented === 'string' ? presented : '');
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    throw new FlotillaError(
      'FORBIDDEN',
      `a ${request.method} request signed in by the session cookie must carry the ${CSRF_HEADER} header with the session's CSRF token (POST /api/v1/auth/browser-session or GET /api/v1/auth/csrf gives it)`,
    );
}

export function isWebSocketUpgrade(request: FastifyRequest): boolean {
  return request.method === 'GET' && typeof request.headers.upgrade === 'string';
}

/**
 * FORBIDDEN unless the request's Origin is the server's own: the origin it was reached at (its Host and protocol)
 * or one of `ownOrigins` (the public URL, when a proxy in front changes the protocol).
 */
export function requireOwnOrigin(request: FastifyRequest, ownOrigins: readonly string[] = []): void {
  const origin = typeof request.headers.origin === 'string' ? originOf(request.headers.origin) : undefined;
  const allowed = [`${request.protocol}://${request.host}`, ...ownOrigins].map(originOf);
  if (origin === undefined || !allowed.includes(origin))
    throw new FlotillaError(
      'FORBIDDEN',
      'a WebSocket signed in by the session cookie must be opened from the dashboard itself (Origin header)',
    );
}

/** The origin of a URL; undefined when it has none (malformed, or `null` from a sandboxed page). */
function originOf(url: string): string | undefined {
  try {
    const origin = new URL(url).origin;
    return origin === 'null' ? undefined : origin;
  } catch {
    return undefined;
  }
}
