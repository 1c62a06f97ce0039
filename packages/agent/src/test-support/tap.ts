import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { DEVICE_CONNECT_ETAG_PARAM, type DeviceReport } from '@flotilla/protocol';

/**
 * A wire tap between the agent and the real control plane (packages/server). It answers nothing itself: every
 * request and every WebSocket upgrade is forwarded byte for byte to the server, whose answer goes back unchanged.
 * It only records what the device sent that the server accepted (reports, connects), and injects the faults a
 * test asks for, which a healthy server cannot produce on demand:
 * - `holdBlobs()`: registry blob downloads wait until released (to look at the world in the middle of a pull);
 * - `serveTarget()`: the device's target-state request is answered with the given body (an invalid target the
 *   real server, which validates every release, never serves);
 * - `disconnect()`: the device's WebSocket is cut, as a lost link does;
 * - `down()` / `up()`: the control plane is unreachable (connections refused, open ones cut), then back on the
 *   same port.
 * - `paceOsImages()`: OS image downloads pass slowly, as over a slow link (and are counted, paced or not).
 * INVARIANT: without a fault in force, what passes through is what the server said;
 * tap.contract.integration.test.ts runs the device routes directly and through the tap and compares the answers.
 */
export class Tap {
  /** `METHOD /path` of every request, in arrival order. */
  readonly requests: string[] = [];
  /** State reports (`PATCH /device/v3/state`) the server accepted, in order. */
  readonly reports: Array<{ at: number; body: Record<string, DeviceReport> }> = [];
  /** Merged view of everything each device reported (and the server accepted). */
  readonly state = new Map<string, DeviceReport>();
  /** The `etag` query parameter of each connect the server accepted (null: none sent), in order. */
  readonly connectEtags: Array<string | null> = [];
  /** The ETag of each target state the server answered 200 to the device, in order. */
  readonly targetEtags: string[] = [];
  /** Manifest GETs the registry answered 200: pulls started. */
  pullsStarted = 0;
  /** Registry requests answered 401 although they carried credentials. */
  registryAuthFailures = 0;
  /** Delta downloads the server answered: each one's Range header, status and the body bytes passed on. */
  readonly deltaDownloads: Array<{ range: string | undefined; status: number; bytes: number }> = [];
  /** Registry blob GETs the server answered: each one's digest, Range header, status and the body bytes passed on. */
  readonly blobDownloads: Array<{
    digest: string;
    range: string | undefined;
    status: number;
    /** The answer's Content-Length: what the server meant to send. */
    length: number;
    bytes: number;
  }> = [];
  /**
   * OS delta downloads (DEVICE_ROUTES.osDeltaDownload) the server answered, as `deltaDownloads`; they take the same
   * faults (`cutNextDeltaDownload`, `stallNextDeltaDownload`).
   */
  readonly osDeltaDownloads: Array<{ range: string | undefined; status: number; bytes: number }> = [];
  /** OS image downloads (DEVICE_ROUTES.osImage) the server answered: each one's Range, status and body bytes passed on. */
  readonly osImageDownloads: Array<{ range: string | undefined; status: number; bytes: number }> = [];
  upstream: URL | undefined;
  port = 0;
  private osImagePace: { bytes: number; everyMs: number } | undefined;
  private deltaCut: number | undefined;
  private blobFault: { kind: 'cut' | 'stall'; bytes: number } | undefined;
  private deltaStall: { bytes: number; held: ServerResponse[] } | undefined;
  private deltaPending = false;
  private readonly stalled: ServerResponse[] = [];
  private server: Server | undefined;
  private readonly open = new Set<Socket>();
  private readonly deviceSockets = new Map<string, Socket>();
  private blobHold: Promise<void> | undefined;
  private readonly targets = new Map<string, string>();

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Listens on `port` (0: a free one; the same port again after `down()`). */
  async up(port = this.port): Promise<void> {
    const server = createServer((req, res) => this.forward(req, res));
    server.on('connection', (socket) => {
      this.open.add(socket);
      socket.on('close', () => this.open.delete(socket));
    });
    server.on('upgrade', (req, socket, head) => this.upgrade(req, socket as Socket, head));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Unreachable: stops listening and cuts every open connection. */
  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const socket of this.open) socket.destroy();
    for (const socket of this.deviceSockets.values()) socket.destroy();
    this.deviceSockets.clear();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  connected(uuid: string): boolean {
    return this.deviceSockets.has(uuid);
  }

  /** Cuts the device's WebSocket connection, as a lost link does. */
  disconnect(uuid: string): void {
    this.deviceSockets.get(uuid)?.destroy();
  }

  /** Blob downloads wait until the returned function is called. */
  holdBlobs(): () => void {
    let release!: () => void;
    const hold = new Promise<void>((resolve) => (release = resolve));
    this.blobHold = hold;
    return () => {
      if (this.blobHold === hold) this.blobHold = undefined;
      release();
    };
  }

  /** The next delta download's connection is cut once `bytes` of its body have passed, as a dropped link does. */
  cutNextDeltaDownload(bytes: number): void {
    this.deltaCut = bytes;
  }

  /**
   * The next registry blob download larger than `bytes` is cut once `bytes` of its body have passed, as a dropped
   * link does (smaller blobs, such as image configs, pass untouched).
   */
  cutNextBlobDownload(bytes: number): void {
    this.blobFault = { kind: 'cut', bytes };
  }

  /**
   * The next registry blob download larger than `bytes` passes `bytes` of its body and then nothing more (a link
   * gone silent); `releaseStalls()` cuts it.
   */
  stallNextBlobDownload(bytes: number): void {
    this.blobFault = { kind: 'stall', bytes };
  }

  /**
   * The next delta download passes `bytes` of its body and then nothing more (the connection stays open, as a
   * link that went silent): a test can kill the agent there. Cut held connections with `releaseStalls()`.
   */
  stallNextDeltaDownload(bytes: number): void {
    this.deltaStall = { bytes, held: [] };
  }

  /** OS image bodies pass at most `bytes` every `everyMs` (a slow link), so a test can act in the middle of one. */
  paceOsImages(bytes: number, everyMs: number): void {
    this.osImagePace = { bytes, everyMs };
  }

  releaseStalls(): void {
    for (const res of this.deltaStall?.held ?? []) res.destroy();
    for (const res of this.stalled.splice(0)) res.destroy();
  }

  /** While on, the device's delta asks are answered 202 pending (as a server still computing) instead of forwarded. */
  holdDeltasPending(on: boolean): void {
    this.deltaPending = on;
  }

  /** Answers the device's target-state requests with `body` (200, no ETag) instead of the server; undefined: stop. */
  serveTarget(uuid: string, body: unknown): void {
    if (body === undefined) this.targets.delete(uuid);
    else this.targets.set(uuid, JSON.stringify(body));
  }

  private forward(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://tap');
    const method = req.method ?? 'GET';
    this.requests.push(`${method} ${url.pathname}`);
    const injected = /^\/device\/v3\/([0-9a-f]+)\/state$/.exec(url.pathname);
    const body = injected && method === 'GET' ? this.targets.get(injected[1] as string) : undefined;
    if (body !== undefined) {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
      return;
    }
    if (this.deltaPending && method === 'POST' && /^\/device\/v1\/[0-9a-f]+\/deltas$/.test(url.pathname)) {
      req.resume();
      res.writeHead(202, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: 'pending', retryAfterMs: 200 }));
      return;
    }
    const isReport = method === 'PATCH' && url.pathname === '/device/v3/state';
    const isRegistry = url.pathname.startsWith('/v2/');
    const isDelta = method === 'GET' && /^\/device\/v1\/[0-9a-f]+\/deltas\/\d+\/\d+\/sha256(:|%3A)/.test(url.pathname);
    const isOsImage = method === 'GET' && /^\/device\/v1\/[0-9a-f]+\/os-images\//.test(url.pathname);
    const isOsDelta =
      method === 'GET' && /^\/device\/v1\/[0-9a-f]+\/os-deltas\/[0-9a-f]{64}\/[0-9a-f]{64}\//.test(url.pathname);
    const hold = method === 'GET' && /^\/v2\/.+\/blobs\/sha256:/.test(url.pathname) ? this.blobHold : undefined;
    const chunks: Buffer[] = [];
    if (isReport) req.on('data', (chunk: Buffer) => chunks.push(chunk));
    const send = (): void => {
      const upstream = this.upstream;
      if (!upstream) return void res.destroy();
      const out = request(
        { host: upstream.hostname, port: upstream.port, method, path: req.url, headers: req.headers },
        (answer) => {
          const status = answer.statusCode ?? 502;
          if (isReport && status >= 200 && status < 300) this.recordReport(req, Buffer.concat(chunks));
          if (injected && method === 'GET' && status === 200 && typeof answer.headers.etag === 'string')
            this.targetEtags.push(answer.headers.etag);
          if (isRegistry && status === 200 && method === 'GET' && /\/manifests\//.test(url.pathname))
            this.pullsStarted += 1;
          if (isRegistry && status === 401 && req.headers.authorization) this.registryAuthFailures += 1;
          res.writeHead(status, answer.headers);
          if (isDelta) return this.passDelta(req, answer, res, status, this.deltaDownloads);
          if (isOsDelta) return this.passDelta(req, answer, res, status, this.osDeltaDownloads);
          if (isOsImage) return this.passOsImage(req, answer, res, status);
          const blob =
            method === 'GET' ? /^\/v2\/.+\/blobs\/(sha256:[0-9a-f]{64})$/.exec(url.pathname)?.[1] : undefined;
          if (blob) return this.passBlob(blob, req, answer, res, status);
          answer.pipe(res);
        },
      );
      out.on('error', () => res.destroy());
      res.on('close', () => out.destroy());
      req.pipe(out);
    };
    if (hold) hold.then(send, send);
    else send();
  }

  private passBlob(digest: string, req: IncomingMessage, answer: IncomingMessage, res: ServerResponse, status: number) {
    const length = Number(answer.headers['content-length'] ?? 0);
    const record = { digest, range: req.headers.range, status, length, bytes: 0 };
    this.blobDownloads.push(record);
    const fault = this.blobFault;
    if (!fault || length <= fault.bytes) return this.passCounted(record, answer, res, undefined, undefined);
    this.blobFault = undefined;
    if (fault.kind === 'cut') return this.passCounted(record, answer, res, fault.bytes, undefined);
    this.stalled.push(res);
    this.passCounted(record, answer, res, undefined, fault);
  }

  private passDelta(
    req: IncomingMessage,
    answer: IncomingMessage,
    res: ServerResponse,
    status: number,
    records: Tap['deltaDownloads'],
  ): void {
    const record = { range: req.headers.range, status, bytes: 0 };
    records.push(record);
    const cut = this.deltaCut;
    this.deltaCut = undefined;
    const stall = this.deltaStall && this.deltaStall.held.length === 0 ? this.deltaStall : undefined;
    if (stall) stall.held.push(res);
    this.passCounted(record, answer, res, cut, stall);
  }

  private passOsImage(req: IncomingMessage, answer: IncomingMessage, res: ServerResponse, status: number): void {
    const record = { range: req.headers.range, status, bytes: 0 };
    this.osImageDownloads.push(record);
    const pace = this.osImagePace;
    if (!pace) {
      this.passCounted(record, answer, res, undefined, undefined);
      return;
    }
    void (async () => {
      try {
        for await (const chunk of answer as AsyncIterable<Buffer>)
          for (let at = 0; at < chunk.length; at += pace.bytes) {
            // The device went away (killed): nothing more is counted as passed on.
            if (res.destroyed) return void answer.destroy();
            const part = chunk.subarray(at, at + pace.bytes);
            record.bytes += part.length;
            // Counted once the socket took it: bytes held here for a slow reader were not served.
            if (!res.write(part))
              await new Promise((resolve) => {
                res.once('drain', resolve);
                res.once('close', resolve);
              });
            await new Promise((resolve) => setTimeout(resolve, pace.everyMs));
          }
        res.end();
      } catch {
        res.destroy();
      }
    })();
  }

  /** Passes a download's body on, counting its bytes; cut after `cut` bytes, or silent after `stall.bytes`. */
  private passCounted(
    record: { bytes: number },
    answer: IncomingMessage,
    res: ServerResponse,
    cut: number | undefined,
    stall: { bytes: number } | undefined,
  ): void {
    answer.on('data', (chunk: Buffer) => {
      if (stall) {
        const part = chunk.subarray(0, Math.max(0, stall.bytes - record.bytes));
        record.bytes += part.length;
        if (part.length > 0) res.write(part);
        return;
      }
      if (cut !== undefined && record.bytes + chunk.length >= cut) {
        const part = chunk.subarray(0, cut - record.bytes);
        record.bytes += part.length;
        // The tap closes its side after the bytes (FIN, not a reset, which could drop bytes already sent), so the
        // test knows exactly what reached the device before the cut.
        res.write(part, () => res.socket?.end());
        answer.destroy();
        return;
      }
      record.bytes += chunk.length;
      res.write(chunk);
    });
    answer.on('end', () => {
      if (!stall) res.end();
    });
  }

  private recordReport(req: IncomingMessage, raw: Buffer): void {
    const text = (req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString('utf8');
    const body = JSON.parse(text) as Record<string, DeviceReport>;
    this.reports.push({ at: Date.now(), body });
    for (const [uuid, report] of Object.entries(body))
      this.state.set(uuid, { ...(this.state.get(uuid) ?? {}), ...report });
  }

  private upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const upstream = this.upstream;
    if (!upstream) return void socket.destroy();
    const url = new URL(req.url ?? '/', 'http://tap');
    this.requests.push(`${req.method ?? 'GET'} ${url.pathname}`);
    const device = /^\/device\/v1\/([0-9a-f]+)\/connect$/.exec(url.pathname)?.[1];
    const out = connect(Number(upstream.port), upstream.hostname, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      out.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length) out.write(head);
      out.once('data', (first: Buffer) => {
        if (device && first.subarray(0, 12).toString('latin1') === 'HTTP/1.1 101') {
          this.connectEtags.push(url.searchParams.get(DEVICE_CONNECT_ETAG_PARAM));
          this.deviceSockets.set(device, socket);
          socket.on('close', () => {
            if (this.deviceSockets.get(device) === socket) this.deviceSockets.delete(device);
          });
        }
      });
      out.pipe(socket);
      socket.pipe(out);
    });
    const end = (): void => {
      out.destroy();
      socket.destroy();
    };
    out.on('error', end);
    out.on('close', end);
    socket.on('error', end);
    socket.on('close', end);
  }
}
