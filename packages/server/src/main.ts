import { Command, Option } from 'commander';
import { readTlsFiles } from './tls/server-tls.js';
import { startServer } from './server.js';
import { describeAcceptQueue, somaxconn } from './http/accept-queue.js';
import { describeOpenFiles, openFileLimits } from './http/open-files.js';

// WARNING: everything this process creates (database, blobs, uploads, secrets) is for its own user only.
process.umask(0o077);

const program = new Command()
  .name('flotilla-server')
  .description('The Flotilla control plane')
  .option('--data <dir>', 'data folder (SQLite database, blobs)', '.flotilla/server')
  .option('--database <url>', 'postgres://… to use PostgreSQL instead of SQLite')
  .option('--host <host>', 'address to listen on', '127.0.0.1')
  .option('--port <port>', 'port to listen on', '8080')
  .option('--public-url <url>', 'URL devices and CLIs reach this server at')
  .addOption(new Option('--tls-cert <file>', 'serve HTTPS with this PEM certificate (chain)').env('FLOTILLA_TLS_CERT'))
  .addOption(new Option('--tls-key <file>', 'PEM private key of --tls-cert').env('FLOTILLA_TLS_KEY'))
  .addOption(
    new Option('--tls-ca <file>', "PEM CA of --tls-cert put in config.json (balenaRootCA) when it isn't public").env(
      'FLOTILLA_TLS_CA',
    ),
  )
  .addOption(
    new Option('--tls-self-signed', "serve HTTPS with the server's own CA, made on first start in <data>/tls").env(
      'FLOTILLA_TLS_SELF_SIGNED',
    ),
  )
  .option('--http-host <host>', 'with TLS: address of the plain-HTTP listener (loopback, a TLS proxy)', '127.0.0.1')
  .option('--http-port <port>', 'with TLS: also serve plain HTTP on this port')
  .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent', 'info')
  .option('--log-retention <lines>', 'device log lines kept per device', '1000')
  .option('--registry-gc-hours <hours>', 'hours between removals of registry images no release needs (0: never)', '24')
  .option('--min-free-mb <mb>', 'free space on the data folder below which the server is unhealthy', '100')
  .option('--release-timeout-min <minutes>', 'releases still running this long are marked failed (0: never)', '60')
  .option('--http-header-timeout-s <s>', 'seconds a client has to send request line and headers', '20')
  .option('--http-request-timeout-s <s>', 'seconds a client has to send a body (long streams exempt)', '60')
  .option('--http-idle-timeout-s <s>', 'seconds a connection may stay silent (keep-alive, stalled streams)', '120')
  .option('--max-connections <n>', 'open connections at most; more are refused', '10000')
  .option(
    '--registry-max-upload-mb <mib>',
    'largest image layer (blob) one upload may hold, in MiB (0: no limit)',
    '10240',
  )
  .option('--registry-quota-mb <mib>', 'registry storage per organization, in MiB (0: unlimited)', '0')
  .option('--delta-concurrency <n>', 'image deltas computed at once (each runs xdelta3 on two layers)', '1')
  .option('--delta-max-layer-mb <mib>', 'larger layers get no delta: devices pull them whole, in MiB', '4096')
  .option('--audit-retention-days <days>', 'days the remote-access audit log keeps ended sessions (0: forever)', '90')
  .option('--node-url <url>', 'URL the other server nodes reach this one at (default: the listening address)')
  .option(
    '--dashboard-dir <dir>',
    'folder of the built web dashboard served at / (default: packages/dashboard/dist/app)',
  )
  .option(
    '--public-url-domain <domain>',
    'wildcard domain for public device URLs, <uuid>.<domain> (default: path-based, <public URL>/public/<uuid>/)',
  )
  .parse();

const opts = program.opts<{
  data: string;
  database?: string;
  host: string;
  port: string;
  publicUrl?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  tlsSelfSigned?: boolean;
  httpHost: string;
  httpPort?: string;
  logLevel: string;
  logRetention: string;
  registryGcHours: string;
  minFreeMb: string;
  releaseTimeoutMin: string;
  httpHeaderTimeoutS: string;
  httpRequestTimeoutS: string;
  httpIdleTimeoutS: string;
  maxConnections: string;
  registryMaxUploadMb: string;
  registryQuotaMb: string;
  nodeUrl?: string;
  publicUrlDomain?: string;
  auditRetentionDays: string;
  dashboardDir?: string;
  deltaConcurrency: string;
  deltaMaxLayerMb: string;
}>();
/** A URL flag: http(s) with a host, or the program exits with a clear message. */
function urlFlag(flag: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {}
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:'))
    program.error(`${flag} must be an http:// or https:// URL, not ${value}`);
  return value;
}
const nodeUrl = urlFlag('--node-url', opts.nodeUrl);
const auditRetentionDays = numberFlag('--audit-retention-days', opts.auditRetentionDays, 0, 100 * 365, true);
if (opts.publicUrlDomain !== undefined && !/^(?=.{1,200}$)([a-z0-9-]+\.)*[a-z0-9-]+$/i.test(opts.publicUrlDomain))
  program.error(`--public-url-domain must be a domain name like devices.example.com, not ${opts.publicUrlDomain}`);
const tls = tlsFlags();
let plainHttp: { host: string; port: number } | undefined;
if (opts.httpPort !== undefined) {
  if (!tls)
    program.error('--http-port is for a plain-HTTP listener beside HTTPS: give --tls-cert or --tls-self-signed');
  plainHttp = { host: opts.httpHost, port: numberFlag('--http-port', opts.httpPort, 0, 65535, true) };
}
const port = Number(opts.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) program.error(`--port must be 0..65535, not ${opts.port}`);
const logRetention = Number(opts.logRetention);
if (!Number.isInteger(logRetention) || logRetention < 1 || logRetention > 1_000_000)
  program.error(`--log-retention must be 1..1000000, not ${opts.logRetention}`);
const registryGcHours = Number(opts.registryGcHours);
if (!(registryGcHours >= 0 && registryGcHours <= 24 * 365))
  program.error(`--registry-gc-hours must be 0..8760, not ${opts.registryGcHours}`);
const registryMaxUploadMb = Number(opts.registryMaxUploadMb);
if (!(registryMaxUploadMb >= 0 && registryMaxUploadMb <= 2 ** 30))
  program.error(`--registry-max-upload-mb must be 0..${2 ** 30}, not ${opts.registryMaxUploadMb}`);
const registryQuotaMb = Number(opts.registryQuotaMb);
if (!(registryQuotaMb >= 0 && registryQuotaMb <= 2 ** 30))
  program.error(`--registry-quota-mb must be 0..${2 ** 30}, not ${opts.registryQuotaMb}`);

/** HTTPS from the flags: a certificate and key, the server's own CA, or none (plain HTTP). */
function tlsFlags(): 'self-signed' | ReturnType<typeof readTlsFiles> | undefined {
  if (opts.tlsSelfSigned) {
    if (opts.tlsCert !== undefined || opts.tlsKey !== undefined)
      program.error('--tls-self-signed makes its own certificate: give it without --tls-cert/--tls-key');
    return 'self-signed';
  }
  if (opts.tlsCert === undefined && opts.tlsKey === undefined) {
    if (opts.tlsCa !== undefined) program.error('--tls-ca needs --tls-cert and --tls-key');
    return undefined;
  }
  const { tlsCert, tlsKey } = opts;
  if (tlsCert === undefined || tlsKey === undefined) return program.error('give --tls-cert and --tls-key together');
  try {
    return readTlsFiles(tlsCert, tlsKey, opts.tlsCa);
  } catch (error) {
    return program.error(`TLS: ${(error as Error).message}`);
  }
}

/** A number flag within [min, max], or the program exits with a clear message. */
function numberFlag(flag: string, value: string, min: number, max: number, integer = false): number {
  const n = Number(value);
  if (value.trim() === '' || !(n >= min && n <= max) || (integer && !Number.isInteger(n)))
    program.error(`${flag} must be ${integer ? 'an integer ' : ''}${min}..${max}, not ${value}`);
  return n;
}
const minFreeMb = numberFlag('--min-free-mb', opts.minFreeMb, 0, 1024 * 1024);
const releaseTimeoutMin = numberFlag('--release-timeout-min', opts.releaseTimeoutMin, 0, 7 * 24 * 60);
const deltas = {
  concurrency: numberFlag('--delta-concurrency', opts.deltaConcurrency, 1, 64, true),
  maxLayerBytes: numberFlag('--delta-max-layer-mb', opts.deltaMaxLayerMb, 1, 1024 * 1024, true) * 1024 * 1024,
};
const http = {
  headerTimeoutMs: numberFlag('--http-header-timeout-s', opts.httpHeaderTimeoutS, 1, 3600) * 1000,
  requestTimeoutMs: numberFlag('--http-request-timeout-s', opts.httpRequestTimeoutS, 1, 24 * 3600) * 1000,
  // Above the 15 s heartbeat of log follow streams, which would otherwise be cut.
  idleTimeoutMs: numberFlag('--http-idle-timeout-s', opts.httpIdleTimeoutS, 20, 24 * 3600) * 1000,
  maxConnections: numberFlag('--max-connections', opts.maxConnections, 1, 1_000_000, true),
};

// WARNING: handlers first. Parents (the launcher, tests, service managers) may signal as soon as they read the
// "listening" line; a signal that met no handler would kill the process at once instead of closing it.
let stopping = false;
let stop: (() => void) | undefined;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    stop?.();
  });
}

const server = await startServer({
  dataDir: opts.data,
  ...(opts.database === undefined ? {} : { databaseUrl: opts.database }),
  host: opts.host,
  port,
  ...(opts.publicUrl === undefined ? {} : { publicUrl: opts.publicUrl }),
  ...(tls === undefined ? {} : { tls }),
  ...(plainHttp === undefined ? {} : { plainHttp }),
  logLevel: opts.logLevel,
  logRetention,
  registryGcHours,
  diskMinFreeBytes: minFreeMb * 1024 * 1024,
  releaseTimeoutMs: releaseTimeoutMin * 60 * 1000,
  http,
  registryMaxUploadMb,
  registryQuotaMb,
  ...(nodeUrl === undefined ? {} : { nodeUrl }),
  auditRetentionDays,
  deltas,
  ...(opts.publicUrlDomain === undefined ? {} : { publicUrlDomain: opts.publicUrlDomain }),
  ...(opts.dashboardDir === undefined ? {} : { dashboardDir: opts.dashboardDir }),
});
if (server.admin) {
  // WARNING: the only place secrets are printed; the launcher parses this exact line.
  process.stdout.write(`FLOTILLA_ADMIN ${JSON.stringify(server.admin)}\n`);
}
process.stdout.write(`flotilla-server listening on ${server.url} (public URL ${server.app.flotilla.publicUrl})\n`);
// Each device connection holds one open file (http/open-files.ts).
const files = openFileLimits();
if (files) process.stdout.write(`flotilla-server ${describeOpenFiles(files)}\n`);
const acceptCap = somaxconn();
if (acceptCap) process.stdout.write(`flotilla-server ${describeAcceptQueue(acceptCap)}\n`);
if (server.plainUrl) process.stdout.write(`flotilla-server plain HTTP on ${server.plainUrl}\n`);

stop = () => {
  const force = setTimeout(() => process.exit(1), 10_000);
  force.unref();
  server.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
if (stopping) stop();
