import { type Server, type Socket, createServer, isIP } from 'node:net';
import { FlotillaError, STREAM_CLOSE_REVOKED, USER_ROUTES, parseStreamControl } from '@flotilla/protocol';
import type WebSocket from 'ws';
import { ReceiveGate, SendWindow } from './send-window.js';
import { closeStream, openStreamSocket, sendControl, streamError, streamUrl } from './stream-socket.js';
import type { StreamEndpoint } from './stream-socket.js';
import { describeTarget } from './tunnel-mapping.js';
import type { TunnelMapping } from './tunnel-mapping.js';

export interface TunnelOptions extends StreamEndpoint {
  /** UUID, 7+ char prefix or name; resolved by the server on each connection. */
  device: string;
  mappings: readonly TunnelMapping[];
  /** Local address to listen on; default 127.0.0.1. */
  bind?: string | undefined;
  /** A connection that failed (refused upgrade, `error` from the device, lost stream); the tunnel keeps serving. */
  onConnectionError?: (listener: TunnelListener, error: FlotillaError) => void;
}

export interface TunnelListener {
  mapping: TunnelMapping;
  /** The address listened on, as given (`127.0.0.1`, `::1`, `0.0.0.0`). */
  address: string;
  /** The port listened on: the mapping's, or the one the OS chose for 0. */
  port: number;
}

export interface Tunnel {
  /** One per mapping, in the same order. */
  listeners: TunnelListener[];
  /** The local ports, in mapping order. */
  ports: number[];
  /** Stops listening and closes every connection; resolves once the listeners are closed. */
  close(): Promise<void>;
}

/** `127.0.0.1:4321`, `[::1]:4321`. */
export function formatAddress(address: string, port: number): string {
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * Listens on a local port per mapping; each accepted TCP connection gets its own stream WebSocket to
 * `GET /api/v1/devices/:uuid/tunnel?port=&service=` and its bytes are piped both ways, half-close included.
 * Rejects (after closing what it opened) when a port cannot be listened on.
 * INVARIANT: a local connection is not read before the device said `ready`: until then its bytes wait in the
 * kernel, so nothing is buffered here for a stream that may never open.
 */
export async function openTunnel(options: TunnelOptions): Promise<Tunnel> {
  const bind = options.bind ?? '127.0.0.1';
  if (isIP(bind) === 0)
    throw new FlotillaError(
      'VALIDATION_FAILED',
      `invalid bind address ${JSON.stringify(bind)}: give an IP address such as 127.0.0.1, 0.0.0.0 or ::1`,
    );
  const report =
    options.onConnectionError ??
    ((listener: TunnelListener, error: FlotillaError) =>
      process.stderr.write(`error: ${describeListener(listener, options.device)}: ${error.message} (${error.code})\n`));
  const servers: Server[] = [];
  const connections = new Set<Connection>();
  const listeners: TunnelListener[] = [];
  const closeAll = async () => {
    for (const connection of connections) connection.destroy();
    connections.clear();
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  };

  try {
    for (const mapping of options.mappings) {
      const url = streamUrl(options.apiUrl, USER_ROUTES.deviceTunnel, options.device, {
        port: mapping.devicePort,
        service: mapping.service,
      });
      let listener: TunnelListener | undefined;
      const server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (socket) => {
        if (!listener) return socket.destroy();
        const where = listener;
        const connection = forward(socket, options, url, (error) => report(where, error));
        connections.add(connection);
        socket.once('close', () => connections.delete(connection));
      });
      servers.push(server);
      const port = await listen(server, mapping.localPort, bind);
      listener = { mapping, address: bind, port };
      listeners.push(listener);
    }
  } catch (error) {
    await closeAll();
    throw error;
  }
  let closing: Promise<void> | undefined;
  return {
    listeners,
    ports: listeners.map((l) => l.port),
    close: () => (closing ??= closeAll()),
  };
}

/** `127.0.0.1:4321 → kitchen-pi:22`, `127.0.0.1:8080 → kitchen-pi:web:80`. */
export function describeListener(listener: TunnelListener, device: string): string {
  return `${formatAddress(listener.address, listener.port)} → ${device}:${describeTarget(listener.mapping)}`;
}

function listen(server: Server, port: number, address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      const where = formatAddress(address, port);
      const code =
        error.code === 'EADDRINUSE' ? 'CONFLICT' : error.code === 'EACCES' ? 'FORBIDDEN' : 'VALIDATION_FAILED';
      reject(new FlotillaError(code, `cannot listen on ${where}: ${error.message}`));
    };
    server.once('error', onError);
    server.listen(port, address, () => {
      server.off('error', onError);
      const bound = server.address();
      resolve(typeof bound === 'object' && bound ? bound.port : port);
    });
  });
}

interface Connection {
  destroy(): void;
}

/** One local connection: opens its stream, then bridges it. The socket arrives paused (pauseOnConnect). */
function forward(
  socket: Socket,
  endpoint: StreamEndpoint,
  url: string,
  report: (error: FlotillaError) => void,
): Connection {
  let ws: WebSocket | undefined;
  // A client that leaves while its stream is still opening (or the tunnel closing) abandons the handshake at once,
  // so nothing waits for the handshake timeout.
  const opening = new AbortController();
  // 'close' follows every socket error (a local client's reset); the stream is ended there.
  socket.on('error', () => undefined);
  socket.once('close', () => {
    opening.abort();
    if (ws) closeStream(ws);
  });
  openStreamSocket(endpoint, url, opening.signal).then(
    (opened) => {
      // The client may have left between the upgrade and this continuation.
      if (opening.signal.aborted) return opened.terminate();
      ws = opened;
      bridge(socket, opened, report);
    },
    (error: FlotillaError) => {
      if (!opening.signal.aborted) report(error);
      socket.destroy();
    },
  );
  return {
    destroy() {
      opening.abort();
      socket.destroy();
      ws?.terminate();
    },
  };
}

function bridge(socket: Socket, ws: WebSocket, report: (error: FlotillaError) => void): void {
  const gate = new ReceiveGate(ws);
  const window = new SendWindow(ws, socket);
  let ready = false;
  let failed = false;
  let sentEof = false;
  let gotEof = false;
  // Both halves closed and our last bytes handed to the kernel: the stream is done.
  const maybeDone = () => {
    if (sentEof && gotEof && socket.writableFinished) closeStream(ws);
  };
  socket.on('finish', maybeDone);

  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) {
      if (!socket.destroyed && !socket.writableEnded) gate.write(socket, data);
      return;
    }
    const control = parseStreamControl(data.toString('utf8'));
    switch (control?.type) {
      case 'ready':
        if (ready) return;
        ready = true;
        socket.on('data', (chunk: Buffer) => window.send(chunk));
        socket.once('end', () => {
          sentEof = true;
          sendControl(ws, { type: 'eof' });
          maybeDone();
        });
        socket.resume();
        return;
      case 'eof':
        gotEof = true;
        socket.end();
        return;
      case 'error':
        failed = true;
        report(streamError(control));
        socket.destroy();
        closeStream(ws);
        return;
      default:
        return;
    }
  });
  ws.on('close', (code, reason) => {
    if (!failed && code === STREAM_CLOSE_REVOKED) {
      const why = reason.toString('utf8');
      report(new FlotillaError('FORBIDDEN', `the server ended the connection${why ? `: ${why}` : ''}`));
    } else if (!failed && !ready) {
      report(new FlotillaError('NETWORK_ERROR', 'the stream closed before the device opened the connection'));
    }
    endThenDestroy(socket);
  });
  // 'close' follows every 'error'.
  ws.on('error', () => undefined);
  ws.resume();
}

/** Delivers what is still queued for the local client, then closes both directions. */
function endThenDestroy(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.writableFinished) socket.destroy();
  else {
    socket.once('finish', () => socket.destroy());
    if (!socket.writableEnded) socket.end();
  }
}
