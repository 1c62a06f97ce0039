import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** The built dashboard of this repository (packages/dashboard/dist/app), seen from packages/server/dist/dashboard/. */
export const DEFAULT_DASHBOARD_DIR = fileURLToPath(new URL('../../../dashboard/dist/app/', import.meta.url));

/**
 * Paths that belong to the API, the device API, the registry and the public device URLs: never the dashboard's,
 * so an unknown one answers 404 in the API's error shape rather than the dashboard's page.
 */
const SERVER_PATHS = /^\/(?:api|api-key|device|v2|v6|v7|auth|metrics|healthz|os|public)(?:[/?]|$)/;

const CSP_REST =
  "img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; " +
  "form-action 'self'; frame-ancestors 'none'";

/**
 * What every dashboard response carries. The CSP allows scripts, styles, fonts and connections from this origin
 * only (no inline script or style, no eval), images from here and data: URLs; the page cannot be framed.
 * index.html gets `pageSecurityHeaders` instead: the same, and its own nonce for style elements.
 */
export const DASHBOARD_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': `default-src 'self'; script-src 'self'; style-src 'self'; ${CSP_REST}`,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

/** Where the page learns its nonce (packages/dashboard/src/csp-nonce.ts reads it). */
export const CSP_NONCE_META = 'csp-nonce';

/**
 * The headers of one index.html response: `<style>` elements carrying `nonce` are allowed as well (the web
 * terminal, xterm.js, makes its own), never inline style attributes, and still no inline script.
 * INVARIANT: a nonce is fresh for every response and the page holding it is never cached (`no-store`): a nonce an
 * attacker could learn from an earlier response would let their injected `<style>` through.
 */
export function pageSecurityHeaders(nonce: string): Record<string, string> {
  return {
    ...DASHBOARD_SECURITY_HEADERS,
    'content-security-policy': `default-src 'self'; script-src 'self'; style-src 'self' 'nonce-${nonce}'; ${CSP_REST}`,
    'cache-control': 'no-store',
  };
}

/** 128 random bits, base64 (the CSP's nonce-source grammar allows its alphabet). */
function newNonce(): string {
  return randomBytes(16).toString('base64');
}

/** index.html with the nonce in a `<meta>` right after `<head>` (or at the top when it has no head). */
export function withNonce(html: string, nonce: string): string {
  const meta = `<meta name="${CSP_NONCE_META}" content="${nonce}">`;
  const head = /<head(?:\s[^>]*)?>/i.exec(html);
  if (!head) return meta + html;
  const at = head.index + head[0].length;
  return html.slice(0, at) + meta + html.slice(at);
}

/** Vite names what it builds under assets/ after a hash of the content: such a file never changes. */
const IMMUTABLE = 'public, max-age=31536000, immutable';

function securityHeaders(reply: FastifyReply): void {
  for (const [name, value] of Object.entries(DASHBOARD_SECURITY_HEADERS)) void reply.header(name, value);
}

function isDashboardPath(request: FastifyRequest): boolean {
  return (request.method === 'GET' || request.method === 'HEAD') && !SERVER_PATHS.test(request.url);
}

/**
 * The web dashboard (packages/dashboard), a single-page app served at `/` from `dir`: its files as they are, and
 * index.html for every other GET outside the server's own paths (the app's routes, e.g. /fleets/x). index.html goes
 * out with a fresh CSP nonce and is never stored (`no-store`); other unhashed files are revalidated on every load
 * (`no-cache`); hashed assets are cached for a year. When `dir`
 * holds no index.html the dashboard is not built: `/` says so in a short page, and nothing else is served.
 *
 * Sets the app's not-found handler (API paths keep the error shape of `notFound`).
 */
export async function registerDashboard(
  app: FastifyInstance,
  dir: string,
  notFound: (request: FastifyRequest, reply: FastifyReply) => void,
): Promise<void> {
  const built = existsSync(join(dir, 'index.html'));
  if (!built) {
    app.get('/', async (_request, reply) => {
      securityHeaders(reply);
      return reply
        .type('text/plain; charset=utf-8')
        .header('cache-control', 'no-cache')
        .send(
          'The Flotilla dashboard is not built. Build it with `npm run build -w @flotilla/dashboard` ' +
            '(or give flotilla-server --dashboard-dir); the API is at /api/v1.\n',
        );
    });
    app.setNotFoundHandler(notFound);
    return;
  }
  const assets = `${join(dir, 'assets')}${sep}`;
  const index = join(dir, 'index.html');
  const sendPage = async (reply: FastifyReply) => {
    // Read on each request, like the other files: a rebuilt dashboard is served without a restart.
    const nonce = newNonce();
    const html = withNonce(await readFile(index, 'utf8'), nonce);
    return reply.headers(pageSecurityHeaders(nonce)).type('text/html; charset=utf-8').send(html);
  };
  await app.register(fastifyStatic, {
    root: dir,
    prefix: '/',
    // INVARIANT: index.html is never sent as a file (it would go out without its nonce): `/` has its own route and
    // `/index.html` falls through to the not-found handler below; both send the page.
    index: false,
    allowedPath: (pathname) => pathname !== '/index.html',
    // Headers are ours: send's own Cache-Control is off, and dotfiles are never served.
    cacheControl: false,
    dotfiles: 'ignore',
    setHeaders: (reply, path) => {
      securityHeaders(reply);
      void reply.header('cache-control', path.startsWith(assets) ? IMMUTABLE : 'no-cache');
    },
  });
  // The folder itself is not a file send serves (it refuses it as a directory).
  app.get('/', (_request, reply) => sendPage(reply));
  app.setNotFoundHandler((request, reply) => {
    // A missing asset is a 404, not the page (a stale tab asking for an old hash must not get HTML as script).
    if (!isDashboardPath(request) || request.url.startsWith('/assets/')) {
      notFound(request, reply);
      return;
    }
    return sendPage(reply);
  });
}
