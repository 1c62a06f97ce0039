// One simulated device speaking the real device protocol (packages/protocol): it registers with a provisioning key,
// polls its target state with its ETag, reports state, ships log lines (NDJSON), and holds the WebSocket, answering
// actions with a result and pings with a pong. Requests go out from the `localAddress` its process was given, over
// that process's keep-alive agent. Every request has a timeout, so nothing waits forever.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import WebSocket from 'ws';
import { DEVICE_ROUTES, path } from '../../packages/protocol/dist/index.js';

const TIMEOUT_MS = 30_000;

/** A small HTTP client bound to one server and one source address; resolves {status, headers, body, ms}. */
export function httpClient(baseUrl, localAddress, maxSockets = 64) {
  const url = new URL(baseUrl);
  // Capped: a burst of thousands of new connections at once overflows the server's accept queue (resets, SYN
  // retries of seconds); a request waiting for a free socket counts in its latency, as it would on a busy device.
  const agent = new http.Agent({ keepAlive: true, localAddress, maxSockets });
  const request = (method, pathname, headers, body) =>
    new Promise((resolve, reject) => {
      const started = performance.now();
      const req = http.request(
        { host: url.hostname, port: url.port, method, path: pathname, headers, agent, timeout: TIMEOUT_MS },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () =>
            resolve({
              status: res.statusCode,
              headers: res.headers,
              body: Buffer.concat(chunks).toString(),
              ms: performance.now() - started,
            }),
          );
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${pathname}: no answer in ${TIMEOUT_MS} ms`)));
      req.on('error', reject);
      req.end(body);
    });
  return { request, close: () => agent.destroy(), baseUrl, localAddress };
}

export class FleetDevice {
  etag = undefined;
  socket = undefined;
  actions = 0;
  actionIds = [];
  toldAt = undefined;
  redials = 0;
  /** Why dials failed (the first ones, for benches). */
  dialErrors = [];

  constructor(client, uuid, key) {
    this.client = client;
    this.uuid = uuid;
    this.key = key;
  }

  /** POST /device/register with the provisioning key, as a freshly flashed device does. */
  static async register(client, fleetId, provisioningKey) {
    const uuid = randomBytes(16).toString('hex');
    const key = randomBytes(24).toString('base64url');
    const body = JSON.stringify({ application: fleetId, uuid, device_type: 'generic-amd64', api_key: key });
    const r = await client.request(
      'POST',
      DEVICE_ROUTES.register.path,
      { authorization: `Bearer ${provisioningKey}`, 'content-type': 'application/json' },
      body,
    );
    if (r.status !== 201) throw new Error(`register: HTTP ${r.status} ${r.body}`);
    return new FleetDevice(client, uuid, key);
  }

  get auth() {
    return { authorization: `Bearer ${this.key}` };
  }

  /** GET its target state with the ETag it holds; resolves {status, ms}. */
  async poll() {
    const headers = this.etag ? { ...this.auth, 'if-none-match': this.etag } : this.auth;
    const r = await this.client.request('GET', path(DEVICE_ROUTES.targetState.path, { uuid: this.uuid }), headers);
    if (r.status !== 200 && r.status !== 304) throw new Error(`poll: HTTP ${r.status} ${r.body}`);
    this.etag = r.headers.etag;
    return r;
  }

  /** PATCH /device/v3/state with a report like an agent's (status, resource use). */
  async report() {
    const body = JSON.stringify({
      [this.uuid]: {
        status: 'Idle',
        cpu_usage: Math.floor(Math.random() * 100),
        memory_usage: 200 + Math.floor(Math.random() * 100),
        memory_total: 1024,
        is_online: true,
      },
    });
    const r = await this.client.request(
      'PATCH',
      DEVICE_ROUTES.reportState.path,
      { ...this.auth, 'content-type': 'application/json' },
      body,
    );
    if (r.status !== 200) throw new Error(`report: HTTP ${r.status} ${r.body}`);
    return r;
  }

  /** POST `lines` log lines as one NDJSON batch; resolves with the server's {accepted, rejected} and ms. */
  async shipLogs(lines, serviceName = 'main') {
    const now = Date.now();
    let body = '';
    for (let i = 0; i < lines; i++)
      body += `${JSON.stringify({ message: `line ${i} of ${now} from ${this.uuid}`, timestamp: now, serviceName })}\n`;
    const r = await this.client.request(
      'POST',
      path(DEVICE_ROUTES.logStream.path, { uuid: this.uuid }),
      { ...this.auth, 'content-type': 'application/x-ndjson' },
      body,
    );
    if (r.status !== 201) throw new Error(`logs: HTTP ${r.status} ${r.body}`);
    return { ...JSON.parse(r.body), ms: r.ms };
  }

  /**
   * Opens the device WebSocket and holds it: actions are answered with an `action-result` (ok), pings with a pong,
   * `target-changed` calls `onTargetChanged`. Resolves once open. Records, for benches: `toldAt` (Date.now() of the
   * last `target-changed`), `actionIds` (every action received), `node` (the index in `failover.urls` connected to).
   *
   * `failover` ({urls: [http base URL of each node], baseMs, maxMs, handshakeMs}): when the connection drops, the device dials
   * again after the agent's backoff (control-plane/connection.ts: baseMs · 2^n, capped at maxMs, n reset once
   * open, jittered over the upper half as util/wakeable.ts `jittered`), each time to the next URL of the list, as a load balancer in front of the nodes would send it to one
   * that answers; `disconnectedAt` and `reconnectedAt` record the last drop and the open that followed it.
   */
  connect({ onTargetChanged = () => undefined, failover } = {}) {
    this.onTargetChanged = onTargetChanged;
    this.failover = failover;
    this.node = 0;
    this.failures = 0;
    // With failover, the first open on any node settles it (a failed dial is retried, not an error).
    return new Promise((resolve, reject) => {
      this.settleOpen = { resolve, reject };
      this.dial(failover ? failover.urls[0] : this.client.baseUrl);
    });
  }

  dial(baseUrl) {
    const base = baseUrl.replace(/^http/, 'ws');
    const url = `${base}${path(DEVICE_ROUTES.connect.path, { uuid: this.uuid })}${this.etag ? `?etag=${encodeURIComponent(this.etag)}` : ''}`;
    const socket = new WebSocket(url, {
      headers: this.auth,
      localAddress: this.client.localAddress,
      perMessageDeflate: false,
      handshakeTimeout: this.failover?.handshakeMs ?? TIMEOUT_MS,
    });
    this.socket = socket;
    let opened = false;
    socket.on('open', () => {
      opened = true;
      this.failures = 0;
      if (this.disconnectedAt !== undefined) this.reconnectedAt = Date.now();
      this.settleOpen.resolve();
    });
    socket.on('error', (error) => {
      this.dialErrors.push(error.message.replace(/\d+\.\d+\.\d+\.\d+:\d+/, 'node'));
      if (!this.failover) this.settleOpen.reject(error);
    });
    socket.on('close', () => {
      if (this.socket !== socket || this.closed || !this.failover) return;
      if (opened) {
        this.disconnectedAt = Date.now();
        this.reconnectedAt = undefined;
      }
      this.redials += 1;
      const cap = Math.min(this.failover.maxMs, this.failover.baseMs * 2 ** this.failures);
      const delay = Math.floor(cap / 2 + Math.random() * (cap / 2));
      this.failures = Math.min(this.failures + 1, 16);
      this.node = (this.node + 1) % this.failover.urls.length;
      this.timer = setTimeout(() => this.dial(this.failover.urls[this.node]), delay);
    });
    socket.on('message', (data) => {
      let message;
      try {
        message = JSON.parse(String(data));
      } catch {
        return;
      }
      if (message.type === 'action') {
        this.actions += 1;
        this.actionIds.push(message.id);
        socket.send(JSON.stringify({ type: 'action-result', id: message.id, ok: true }));
      } else if (message.type === 'ping') socket.send(JSON.stringify({ type: 'pong' }));
      else if (message.type === 'target-changed') {
        this.toldAt = Date.now();
        this.onTargetChanged(this);
      }
    });
  }

  /** Powers the device off: its connection ends and it does not dial again. */
  close() {
    this.closed = true;
    clearTimeout(this.timer);
    this.socket?.terminate();
  }
}
