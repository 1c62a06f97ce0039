import type { AdminCredentials } from './auth/bootstrap.js';
import { LISTEN_BACKLOG } from './http/accept-queue.js';
import { bootstrapAdmin } from './auth/bootstrap.js';
import { buildApp } from './app.js';
import type { FlotillaApp } from './app.js';
import { openDatabase } from './db/database.js';
import { closeAbandonedSessions } from './remote-access/sessions.js';
import { makePrivateDir, tightenTree } from './disk/private-files.js';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { DEFAULT_HTTP_LIMITS, plainHttpBeside, type HttpLimits } from './http/limits.js';
import { ensureSelfSignedTls, serverNames } from './tls/self-signed.js';
import type { ServerTls } from './tls/server-tls.js';

export interface StartServerOptions {
  /** Folder for the SQLite database (and later blobs). Without it and without databaseUrl: in-memory SQLite. */
  dataDir?: string;
  /** `postgres://…` to use PostgreSQL. */
  databaseUrl?: string;
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Defaults to `http(s)://<host>:<port>`. */
  publicUrl?: string;
  /**
   * Speak HTTPS: with this certificate, or `'self-signed'` for the server's own CA and a server certificate it
   * signs, made on first start and kept in `<dataDir>/tls` (needs `dataDir`).
   */
  tls?: ServerTls | 'self-signed';
  /** With `tls`: plain HTTP here too, for loopback clients and a TLS-terminating proxy (port 0 picks one). */
  plainHttp?: { host: string; port: number };
  /** pino level, or false to log nothing. Default: false (quiet for tests). */
  logLevel?: string | false;
  /** Log lines kept per device (default 1,000). */
  logRetention?: number;
  /** Hours between registry garbage collections (default 24; 0 never). */
  registryGcHours?: number;
  /** Free space on the data folder below which the server is unhealthy and refuses new uploads (default 100 MB). */
  diskMinFreeBytes?: number;
  /** How often free space is checked (default 30 s). */
  diskCheckIntervalMs?: number;
  /** Releases still running this long after creation are marked failed (default 60 min; 0 never). */
  releaseTimeoutMs?: number;
  /** HTTP timeouts and connection cap. */
  http?: Partial<HttpLimits>;
  /** Largest registry blob upload in MiB (default 10240; 0 no limit). */
  registryMaxUploadMb?: number;
  /** Registry storage quota per organization in MiB (default 0: no quota). */
  registryQuotaMb?: number;
  /** How the other server nodes reach this one; defaults to the listening address. */
  nodeUrl?: string;
  /** Wildcard domain for host-based public device URLs (`<uuid>.<domain>`); without it they are path-based. */
  publicUrlDomain?: string;
  /** How long a shell or tunnel waits for the device to dial (default 10 s). */
  remoteDialTimeoutMs?: number;
  /** Days the remote-access audit log keeps ended sessions (default 90; 0 forever). */
  auditRetentionDays?: number;
  /** Folder of the built web dashboard, served at `/` (default: packages/dashboard/dist/app of this repository). */
  dashboardDir?: string;
  /** Delta computation: deltas computed at once (default 1), largest layer given a delta (default 4 GiB). */
  deltas?: { concurrency?: number; maxLayerBytes?: number };
  /** How often this node evaluates the running rollouts (default 1 s). */
  /** How often every connected device's revisions are compared again, the safety net for a lost notice. */
  targetSweepMs?: number;
  rolloutIntervalMs?: number;
}

export interface RunningServer {
  url: string;
  /** The plain-HTTP listener beside an HTTPS one (`plainHttp`). */
  plainUrl?: string;
  /** The CA devices are told to trust (config.json `balenaRootCA`), when the server has one. */
  rootCa?: string;
  close: () => Promise<void>;
  app: FlotillaApp;
  /** Present when this start created the admin user (empty database); the secrets are shown only here. */
  admin?: AdminCredentials;
}

const MIB = 1024 * 1024;
/** How long a closing server waits for requests in flight before it cuts the connections left open. */
const CLOSE_GRACE_MS = 3_000;

/** Opens the database, bootstraps the admin on an empty one, and listens. */
export async function startServer(options: StartServerOptions): Promise<RunningServer> {
  // WARNING: the data folder holds every tenant's secrets; it is private before anything is written into it.
  if (options.dataDir) makePrivateDir(options.dataDir);
  const tls = await serverTls(options);
  const database = await openDatabase({ dataDir: options.dataDir, databaseUrl: options.databaseUrl });
  let plain: Server | undefined;
  try {
    const admin = await bootstrapAdmin(database.db);
    // The public URL must be known before listening when the port is fixed; with port 0 it is fixed up below.
    const app = await buildApp({
      database,
      publicUrl: options.publicUrl ?? (tls ? 'https://localhost' : 'http://localhost'),
      tls,
      logLevel: options.logLevel ?? false,
      processMetrics: true,
      registryDir: options.dataDir ? `${options.dataDir}/registry` : undefined,
      ...(options.logRetention === undefined ? {} : { logRetention: options.logRetention }),
      ...(options.registryGcHours === undefined ? {} : { registryGcIntervalMs: options.registryGcHours * 3600 * 1000 }),
      dataDir: options.dataDir,
      ...(options.diskMinFreeBytes === undefined ? {} : { diskMinFreeBytes: options.diskMinFreeBytes }),
      ...(options.diskCheckIntervalMs === undefined ? {} : { diskCheckIntervalMs: options.diskCheckIntervalMs }),
      ...(options.releaseTimeoutMs === undefined ? {} : { releaseTimeoutMs: options.releaseTimeoutMs }),
      http: options.http,
      ...(options.registryMaxUploadMb === undefined
        ? {}
        : { registryMaxUploadBytes: options.registryMaxUploadMb * MIB }),
      ...(options.registryQuotaMb === undefined ? {} : { registryQuotaBytes: options.registryQuotaMb * MIB }),
      ...(options.nodeUrl === undefined ? {} : { nodeUrl: options.nodeUrl }),
      ...(options.publicUrlDomain === undefined ? {} : { publicUrlDomain: options.publicUrlDomain }),
      ...(options.remoteDialTimeoutMs === undefined ? {} : { remoteDialTimeoutMs: options.remoteDialTimeoutMs }),
      ...(options.auditRetentionDays === undefined ? {} : { auditRetentionDays: options.auditRetentionDays }),
      ...(options.dashboardDir === undefined ? {} : { dashboardDir: options.dashboardDir }),
      ...(options.deltas === undefined ? {} : { deltas: options.deltas }),
      ...(options.rolloutIntervalMs === undefined ? {} : { rolloutIntervalMs: options.rolloutIntervalMs }),
      ...(options.targetSweepMs === undefined ? {} : { targetSweepMs: options.targetSweepMs }),
    });
    // Files earlier versions (or people) left group- or world-readable, and what this start created, become private.
    if (options.dataDir) await tightenTree(options.dataDir);
    await app.listen({ host: options.host, port: options.port, backlog: LISTEN_BACKLOG });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : options.port;
    const host = options.host.includes(':') ? `[${options.host}]` : options.host;
    const url = `${tls ? 'https' : 'http'}://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
    let plainUrl: string | undefined;
    if (tls && options.plainHttp) {
      plain = plainHttpBeside(app.server, { ...DEFAULT_HTTP_LIMITS, ...options.http });
      plainUrl = await listenPlain(plain, options.plainHttp);
    }
    if (!options.publicUrl) app.flotilla.publicUrl = url;
    if (!options.nodeUrl) app.flotilla.nodeUrl = url;
    // Streams this node relayed before a kill or power cut are over; the audit log says so.
    await closeAbandonedSessions(database.db, app.flotilla.nodeUrl);
    let closed: Promise<void> | undefined;
    const close = () =>
      (closed ??= (async () => {
        // Requests in flight get a grace period to finish. WARNING: fastify only reaps connections that are idle
        // when the close starts; a keep-alive connection caught between requests then holds the close open until
        // the idle timeout (minutes), so whatever is still open after the grace period is cut.
        const cut = setTimeout(() => {
          app.server.closeAllConnections();
          plain?.closeAllConnections();
        }, CLOSE_GRACE_MS);
        try {
          await Promise.all([
            app.close(),
            plain && new Promise<void>((resolve) => plain?.close(() => resolve()) ?? resolve()),
          ]);
        } finally {
          clearTimeout(cut);
        }
        await database.close();
      })());
    return {
      url,
      close,
      app,
      ...(admin ? { admin } : {}),
      ...(plainUrl === undefined ? {} : { plainUrl }),
      ...(tls?.ca === undefined ? {} : { rootCa: tls.ca }),
    };
  } catch (error) {
    plain?.close();
    await database.close();
    throw error;
  }
}

/** The certificate to serve, the server's own made or reused when `tls` is `'self-signed'`. */
async function serverTls(options: StartServerOptions): Promise<ServerTls | undefined> {
  if (options.tls !== 'self-signed') return options.tls;
  if (!options.dataDir) throw new Error('a self-signed certificate is kept in the data folder: give one');
  const publicHost = options.publicUrl ? new URL(options.publicUrl).hostname : '';
  const listenHost = options.host === '0.0.0.0' || options.host === '::' ? [] : [options.host];
  return ensureSelfSignedTls(join(options.dataDir, 'tls'), serverNames(publicHost, listenHost));
}

function listenPlain(server: Server, at: { host: string; port: number }): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, LISTEN_BACKLOG, () => {
      server.off('error', reject);
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : at.port;
      resolve(`http://${at.host.includes(':') ? `[${at.host}]` : at.host}:${port}`);
    });
  });
}
