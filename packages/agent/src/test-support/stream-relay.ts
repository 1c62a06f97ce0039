import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { waitFor } from '@flotilla/testkit';
import {
  STREAM_CHANNEL,
  channelFrame,
  parseStreamControl,
  readChannelFrame,
  type StreamControl,
  type StreamOpenMessage,
  type StreamRequest,
} from '@flotilla/protocol';
import { type WebSocket, WebSocketServer } from 'ws';

/**
 * The server's half of remote streams, for tests of the agent's half while the real relay is elsewhere: an HTTP
 * server on loopback that accepts `GET /device/v1/<uuid>/streams/<id>` upgrades carrying the device's key (401
 * otherwise) and hands each accepted WebSocket to the test as a StreamPeer, playing the user's side.
 */
export class StreamRelay {
  private readonly accepted = new Map<string, StreamPeer>();
  /** Upgrades refused for a wrong path or key. */
  refused = 0;

  private constructor(
    private readonly server: Server,
    private readonly wss: WebSocketServer,
    readonly uuid: string,
    readonly deviceApiKey: string,
    private readonly scheme: 'http' | 'https',
  ) {}

  /** `tls`: serve HTTPS with this key and certificate (for 127.0.0.1), so the device dials wss://. */
  static async start(options: { tls?: { key: string; cert: string } } = {}): Promise<StreamRelay> {
    const uuid = randomBytes(16).toString('hex');
    const key = randomBytes(16).toString('hex');
    const notFound = (_req: unknown, res: { writeHead(status: number): { end(): void } }): void =>
      res.writeHead(404).end();
    const server = options.tls ? createTlsServer(options.tls, notFound) : createServer(notFound);
    const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024, perMessageDeflate: false });
    const relay = new StreamRelay(server, wss, uuid, key, options.tls ? 'https' : 'http');
    server.on('upgrade', (req, socket, head) => {
      const match = /^\/device\/v1\/([0-9a-f]{32})\/streams\/([0-9a-f]{32})$/.exec(req.url ?? '');
      if (!match || match[1] !== uuid || req.headers.authorization !== `Bearer ${key}`) {
        relay.refused += 1;
        socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      const id = match[2] as string;
      wss.handleUpgrade(req, socket, head, (ws) => relay.accepted.set(id, new StreamPeer(ws)));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return relay;
  }

  get apiEndpoint(): string {
    return `${this.scheme}://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** A stream-open message for `request`, with a fresh id. */
  message(request: StreamRequest): StreamOpenMessage {
    return { type: 'stream-open', id: randomBytes(16).toString('hex'), request };
  }

  /** The device's WebSocket for stream `id`, once it has dialled. */
  peer(id: string): Promise<StreamPeer> {
    return waitFor(`the device dials stream ${id}`, () => this.accepted.get(id), { timeoutMs: 10_000, intervalMs: 10 });
  }

  async close(): Promise<void> {
    for (const client of this.wss.clients) client.terminate();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** The user's side of one stream: what arrived (shell channels, tunnel bytes, control messages) and how it ended. */
export class StreamPeer {
  readonly controls: StreamControl[] = [];
  readonly stdout: Buffer[] = [];
  readonly stderr: Buffer[] = [];
  /** Binary frames of a tunnel, as they came (set `onBytes` to consume them instead of keeping them). */
  readonly bytes: Buffer[] = [];
  received = 0;
  /** Payload bytes of shell frames per channel (stdin, stdout, stderr), kept or not. */
  readonly channelBytes: [number, number, number] = [0, 0, 0];
  onBytes: ((data: Buffer) => void) | undefined;
  closeCode: number | undefined;
  readonly closed: Promise<number>;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      const buffer = data as Buffer;
      if (!isBinary) {
        const message = parseStreamControl(buffer.toString('utf8'));
        if (message) this.controls.push(message);
        return;
      }
      this.received += buffer.length;
      const channel = buffer[0];
      if (channel === 0 || channel === 1 || channel === 2) this.channelBytes[channel] += buffer.length - 1;
      if (this.onBytes) return this.onBytes(buffer);
      this.bytes.push(buffer);
      const frame = readChannelFrame(buffer);
      if (frame?.channel === STREAM_CHANNEL.stdout) this.stdout.push(frame.data);
      if (frame?.channel === STREAM_CHANNEL.stderr) this.stderr.push(frame.data);
    });
    this.closed = new Promise((resolve) =>
      ws.once('close', (code) => {
        this.closeCode = code;
        resolve(code);
      }),
    );
  }

  text(channel: 'stdout' | 'stderr'): string {
    return Buffer.concat(this[channel]).toString('utf8');
  }

  control<T extends StreamControl['type']>(type: T, timeoutMs = 10_000): Promise<Extract<StreamControl, { type: T }>> {
    return waitFor(
      `a ${type} message (got ${JSON.stringify(this.controls)})`,
      () => this.controls.find((m): m is Extract<StreamControl, { type: T }> => m.type === type),
      { timeoutMs, intervalMs: 10 },
    );
  }

  /** Waits until stdout holds `text`. */
  output(text: string, timeoutMs = 10_000): Promise<string> {
    return waitFor(
      `"${text}" on stdout (got ${JSON.stringify(this.text('stdout'))})`,
      () => {
        const out = this.text('stdout');
        return out.includes(text) ? out : undefined;
      },
      { timeoutMs, intervalMs: 10 },
    );
  }

  stdin(text: string): void {
    this.ws.send(channelFrame(STREAM_CHANNEL.stdin, Buffer.from(text)));
  }

  send(message: StreamControl): void {
    this.ws.send(JSON.stringify(message));
  }
}
