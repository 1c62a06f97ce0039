import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  DEVICE_CONNECT_ETAG_PARAM,
  deviceLogLineSchema,
  deviceMessageSchema,
  type ActionMessage,
  type ActionResultMessage,
  type DeviceLogLine,
  type DeviceReport,
  type TargetDevice,
} from '@flotilla/protocol';
import type { ServedImage } from './fake-registry.js';

interface Device {
  id: number;
  uuid: string;
  apiKey: string;
}

/**
 * A small, honest stand-in for the control plane: the device routes of PROTOCOL.md (register, find self, key
 * exchange, target state with ETag, state report) and a read-only registry with basic auth `d_<uuid>`/device key.
 * State is in memory; `stop()`/`start()` simulate an outage on the same port.
 */
export class FakeControlPlane {
  readonly devices = new Map<string, Device>();
  readonly reports: Array<{ at: number; body: Record<string, DeviceReport> }> = [];
  /** Merged view of everything each device reported. */
  readonly state = new Map<string, DeviceReport>();
  readonly images = new Map<string, ServedImage>();
  readonly requests: string[] = [];
  /** Log lines received on `POST /device/v2/:uuid/log-stream` (gunzipped, validated), in arrival order. */
  readonly logs: Array<DeviceLogLine & { uuid: string }> = [];
  targets = new Map<string, TargetDevice>();
  /** While set, blob downloads wait for it: lets a test look at the world in the middle of a pull. */
  blobGate: Promise<void> | undefined;
  pullsStarted = 0;
  registryAuthFailures = 0;
  private server: Server | undefined;
  /** Open device connections (`GET /device/v1/:uuid/connect`, WebSocket, device key). */
  private readonly sockets = new Map<string, WebSocket>();
  /** The `etag` query parameter of each accepted connect, in order (null: none sent). */
  readonly connectEtags: Array<string | null> = [];
  private readonly pendingActions = new Map<number, (result: ActionResultMessage) => void>();
  private nextActionId = 1;
  private nextId = 1;
  port = 0;

  constructor(readonly provisioningKey = 'provisioning-key-0123456789') {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get registryHost(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(port = 0): Promise<void> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        res.statusCode = 500;
        res.end(String(error));
      });
    });
    const wss = new WebSocketServer({ noServer: true });
    server.on('upgrade', (req, socket, head) => {
      const match = /^\/device\/v1\/([0-9a-f]+)\/connect$/.exec(new URL(req.url ?? '/', 'http://x').pathname);
      const device = this.deviceByKey(this.bearer(req));
      if (!match || !device || device.uuid !== match[1]) {
        socket.end('HTTP/1.1 401 Unauthorized\r\n\r\n');
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        this.connectEtags.push(new URL(req.url ?? '/', 'http://x').searchParams.get(DEVICE_CONNECT_ETAG_PARAM));
        this.sockets.set(device.uuid, ws);
        ws.on('close', () => {
          if (this.sockets.get(device.uuid) === ws) this.sockets.delete(device.uuid);
        });
        ws.on('message', (data) => {
          const parsed = deviceMessageSchema.safeParse(JSON.parse(data.toString()));
          if (parsed.success && parsed.data.type === 'action-result')
            this.pendingActions.get(parsed.data.id)?.(parsed.data);
        });
      });
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const socket of this.sockets.values()) socket.terminate();
    this.sockets.clear();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  connected(uuid: string): boolean {
    return this.sockets.has(uuid);
  }

  /** Drops the device's connection, as a lost link does. */
  disconnect(uuid: string): void {
    this.sockets.get(uuid)?.terminate();
  }

  /** The ETag the device's target state is served with now. */
  etagOf(uuid: string): string {
    return this.targetAnswer(uuid).etag;
  }

  private targetAnswer(uuid: string): { body: string; etag: string } {
    const target = this.targets.get(uuid) ?? { name: 'device', config: {}, apps: {} };
    const body = JSON.stringify({ [uuid]: target });
    return { body, etag: `"${createHash('sha256').update(body).digest('hex').slice(0, 16)}"` };
  }

  /** Sends an action over the device's connection and resolves with its action-result. */
  sendAction(uuid: string, action: Omit<ActionMessage, 'type' | 'id'>): Promise<ActionResultMessage> {
    const socket = this.sockets.get(uuid);
    if (!socket) return Promise.reject(new Error(`device ${uuid} is not connected`));
    const id = this.nextActionId++;
    return new Promise((resolve) => {
      this.pendingActions.set(id, resolve);
      socket.send(JSON.stringify({ type: 'action', id, ...action }));
    });
  }

  /** Pre-register a device (for the 409 → key exchange path). */
  addDevice(uuid: string, apiKey: string): number {
    const id = this.nextId++;
    this.devices.set(uuid, { id, uuid, apiKey });
    return id;
  }

  setTarget(uuid: string, device: TargetDevice): void {
    this.targets.set(uuid, device);
  }

  /** `127.0.0.1:<port>/v2/<repo>@sha256:…`, the form target state uses. */
  serve(image: ServedImage): string {
    this.images.set(image.repo, image);
    return `${this.registryHost}/${image.repo}@${image.manifestDigest}`;
  }

  private bearer(req: IncomingMessage): string | undefined {
    const header = req.headers.authorization ?? '';
    return header.startsWith('Bearer ') ? header.slice(7) : undefined;
  }

  private deviceByKey(key: string | undefined): Device | undefined {
    return [...this.devices.values()].find((d) => d.apiKey === key);
  }

  private async body(req: IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
  }

  private json(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(value));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const method = req.method ?? 'GET';
    this.requests.push(`${method} ${url.pathname}`);
    if (url.pathname.startsWith('/v2/')) return this.registry(req, res, url.pathname, method);
    const key = this.bearer(req);

    if (method === 'POST' && url.pathname === '/device/register') {
      if (key !== this.provisioningKey)
        return this.json(res, 401, { error: { code: 'UNAUTHENTICATED', message: 'bad provisioning key' } });
      const body = (await this.body(req)) as { uuid: string; api_key: string; application: number };
      if (this.devices.has(body.uuid))
        return this.json(res, 409, { error: { code: 'DEVICE_ALREADY_REGISTERED', message: 'exists' } });
      const id = this.addDevice(body.uuid, body.api_key);
      return this.json(res, 201, { id, uuid: body.uuid, api_key: body.api_key });
    }
    if (method === 'GET' && url.pathname === '/v7/device') {
      const uuid = /uuid eq '([0-9a-f]+)'/.exec(url.searchParams.get('$filter') ?? '')?.[1] ?? '';
      const device = this.devices.get(uuid);
      if (!device || (key !== device.apiKey && key !== this.provisioningKey))
        return this.json(res, 401, { error: { code: 'UNAUTHENTICATED', message: 'no' } });
      return this.json(res, 200, { d: [{ id: device.id }] });
    }
    const exchange = /^\/api-key\/device\/(\d+)\/device-key$/.exec(url.pathname);
    if (method === 'POST' && exchange) {
      if (key !== this.provisioningKey)
        return this.json(res, 401, { error: { code: 'UNAUTHENTICATED', message: 'no' } });
      const device = [...this.devices.values()].find((d) => d.id === Number(exchange[1]));
      if (!device) return this.json(res, 404, { error: { code: 'DEVICE_NOT_FOUND', message: 'no' } });
      device.apiKey = ((await this.body(req)) as { apiKey: string }).apiKey;
      return this.json(res, 200, {});
    }
    const state = /^\/device\/v3\/([0-9a-f]+)\/state$/.exec(url.pathname);
    if (method === 'GET' && state) {
      const device = this.deviceByKey(key);
      if (!device || device.uuid !== state[1])
        return this.json(res, 401, { error: { code: 'UNAUTHENTICATED', message: 'no' } });
      const { body, etag } = this.targetAnswer(device.uuid);
      if (req.headers['if-none-match'] === etag) {
        res.writeHead(304, { etag });
        return void res.end();
      }
      res.writeHead(200, { 'content-type': 'application/json', etag });
      return void res.end(body);
    }
    if (method === 'PATCH' && url.pathname === '/device/v3/state') {
      const device = this.deviceByKey(key);
      const body = (await this.body(req)) as Record<string, DeviceReport>;
      if (!device || Object.keys(body).some((u) => u !== device.uuid))
        return this.json(res, 401, { error: { code: 'UNAUTHENTICATED', message: 'no' } });
      this.reports.push({ at: Date.now(), body });
      for (const [uuid, report] of Object.entries(body))
        this.state.set(uuid, { ...(this.state.get(uuid) ?? {}), ...report });
      return this.json(res, 200, {});
    }
    const logStream = /^\/device\/v2\/([0-9a-f]+)\/log-stream$/.exec(url.pathname);
    if (method === 'POST' && logStream) {
      const device = this.deviceByKey(key);
      if (!device || device.uuid !== logStream[1])
        return this.json(res, 401, { error: { code: 'UNAUTHENTICATED', message: 'no' } });
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const raw = Buffer.concat(chunks);
      const text = (req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString('utf8');
      for (const line of text.split('\n').filter((l) => l.trim() !== ''))
        this.logs.push({ ...deviceLogLineSchema.parse(JSON.parse(line)), uuid: device.uuid });
      return this.json(res, 201, {});
    }
    this.json(res, 404, { error: { code: 'NOT_FOUND', message: `${method} ${url.pathname}` } });
  }

  private async registry(req: IncomingMessage, res: ServerResponse, pathname: string, method: string): Promise<void> {
    const auth = req.headers.authorization ?? '';
    const [user, pass] = auth.startsWith('Basic ')
      ? Buffer.from(auth.slice(6), 'base64').toString('utf8').split(':')
      : [];
    const device = user?.startsWith('d_') ? this.devices.get(user.slice(2)) : undefined;
    if (!device || device.apiKey !== pass) {
      if (auth) this.registryAuthFailures += 1;
      res.writeHead(401, {
        'www-authenticate': 'Basic realm="flotilla-fake"',
        'docker-distribution-api-version': 'registry/2.0',
      });
      return void res.end();
    }
    if (pathname === '/v2/') {
      res.writeHead(200, { 'docker-distribution-api-version': 'registry/2.0' });
      return void res.end('{}');
    }
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(pathname);
    const image = m ? this.images.get(m[1] as string) : undefined;
    if (!m || !image) return this.json(res, 404, { errors: [{ code: 'NAME_UNKNOWN' }] });
    if (m[2] === 'manifests') {
      if (m[3] !== image.manifestDigest) return this.json(res, 404, { errors: [{ code: 'MANIFEST_UNKNOWN' }] });
      if (method === 'GET') this.pullsStarted += 1;
      res.writeHead(200, {
        'content-type': 'application/vnd.docker.distribution.manifest.v2+json',
        'docker-content-digest': image.manifestDigest,
        'content-length': image.manifest.length,
      });
      return void res.end(method === 'HEAD' ? undefined : image.manifest);
    }
    const blob = image.blobs.get(m[3] as string);
    if (!blob) return this.json(res, 404, { errors: [{ code: 'BLOB_UNKNOWN' }] });
    if (method === 'GET' && this.blobGate) await this.blobGate;
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'docker-content-digest': m[3] as string,
      'content-length': blob.length,
    });
    res.end(method === 'HEAD' ? undefined : blob);
  }
}
