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
export function httpClient(baseUrl, localAddress) {
  const url = new URL(baseUrl);
  // Capped: a burst of thousands of new connections at once overflows the server's accept queue (resets, SYN
  // retries of seconds); a request waiting for a free socket counts in its latency, as it would on a busy device.
  const agent = new http.Agent({ keepAlive: true, localAddress, maxSockets: 64 });
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
   * `target-changed` calls `onTargetChanged`. Resolves once open.
   */
  connect({ onTargetChanged = () => undefined } = {}) {
    const base = this.client.baseUrl.replace(/^http/, 'ws');
    const url = `${base}${path(DEVICE_ROUTES.connect.path, { uuid: this.uuid })}${this.etag ? `?etag=${encodeURIComponent(this.etag)}` : ''}`;
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url, {
        headers: this.auth,
        localAddress: this.client.localAddress,
        perMessageDeflate: false,
        handshakeTimeout: TIMEOUT_MS,
      });
      this.socket = socket;
      socket.on('open', () => resolve());
      socket.on('error', reject);
      socket.on('message', (data) => {
        let message;
        try {
          message = JSON.parse(String(data));
        } catch {
          return;
        }
        if (message.type === 'action') {
          this.actions += 1;
          socket.send(JSON.stringify({ type: 'action-result', id: message.id, ok: true }));
        } else if (message.type === 'ping') socket.send(JSON.stringify({ type: 'pong' }));
        else if (message.type === 'target-changed') onTargetChanged(this);
      });
    });
  }

  close() {
    this.socket?.terminate();
  }
}
