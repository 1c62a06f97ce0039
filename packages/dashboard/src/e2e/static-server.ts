import { readFile } from 'node:fs/promises';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, sep } from 'node:path';

/** The policy flotilla-server sends with the dashboard: scripts and styles from the page's own origin only. */
export const DASHBOARD_CSP = "script-src 'self'; style-src 'self'";

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
};

/**
 * Serves the built dashboard (dist/app) on loopback with the server's CSP, for the boot test before the real
 * server serves it: files by path, index.html for any other page path (client-side routes), and 404 for /api.
 */
export async function serveDashboard(root: string): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer(async (req, res) => {
    const pathname = new URL(req.url ?? '/', 'http://x').pathname;
    res.setHeader('content-security-policy', DASHBOARD_CSP);
    if (pathname.startsWith('/api/')) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'NOT_FOUND', message: `no ${pathname} on the static test server` } }));
      return;
    }
    const file = normalize(join(root, decodeURIComponent(pathname)));
    const isPage = extname(pathname) === '';
    if (!isPage && !file.startsWith(root + sep)) {
      res.writeHead(403).end();
      return;
    }
    const served = isPage ? join(root, 'index.html') : file;
    try {
      const body = await readFile(served);
      res.writeHead(200, { 'content-type': TYPES[extname(served)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
