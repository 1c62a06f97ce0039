import { connect } from 'node:net';
import {
  DEVICE_ROUTES,
  STREAM_CHANNEL,
  channelFrame,
  parseStreamControl,
  path,
  readChannelFrame,
  serverMessageSchema,
  type StreamOpenMessage,
} from '@flotilla/protocol';
import WebSocket from 'ws';

/**
 * A device's side of remote access for server tests, honest to the protocol (remote-access.ts) and small: it holds
 * the device connection, dials every stream it is asked for, and serves it: `tcp` by connecting to
 * 127.0.0.1:<port> and piping with back-pressure; `shell` by echoing stdin back on stdout, `exit <n>` typed on a
 * line ending it with code n. The agent's real implementation is tested in the agent package.
 */
export function streamDevice(url: string, uuid: string, key: string) {
  const requests: StreamOpenMessage[] = [];
  const streams = new Set<WebSocket>();
  const control = new WebSocket(new URL(path(DEVICE_ROUTES.connect.path, { uuid }), url.replace('http', 'ws')), {
    headers: { authorization: `Bearer ${key}` },
  });
  control.on('message', (data) => {
    const parsed = serverMessageSchema.safeParse(JSON.parse(data.toString()));
    if (!parsed.success || parsed.data.type !== 'stream-open') return;
    requests.push(parsed.data);
    serve(parsed.data);
  });
  const opened = new Promise<void>((resolve, reject) => {
    control.on('open', () => resolve());
    control.on('error', reject);
  });

  function serve(message: StreamOpenMessage): void {
    const socket = new WebSocket(
      new URL(path(DEVICE_ROUTES.stream.path, { uuid, id: message.id }), url.replace('http', 'ws')),
      { headers: { authorization: `Bearer ${key}` }, perMessageDeflate: false },
    );
    streams.add(socket);
    socket.on('close', () => streams.delete(socket));
    socket.on('error', () => undefined);
    const send = (value: unknown) => socket.readyState === socket.OPEN && socket.send(JSON.stringify(value));
    const { request } = message;
    if (request.kind === 'shell') {
      let line = '';
      socket.on('message', (data: Buffer, isBinary) => {
        if (!isBinary) return;
        const frame = readChannelFrame(data);
        if (frame?.channel !== STREAM_CHANNEL.stdin) return;
        socket.send(channelFrame(STREAM_CHANNEL.stdout, frame.data));
        line += frame.data.toString();
        const exit = /exit (\d+)\n/.exec(line);
        if (exit) {
          send({ type: 'exit', code: Number(exit[1]) });
          socket.close();
        }
      });
      socket.on('open', () => send({ type: 'ready' }));
      return;
    }
    socket.on('open', () => {
      const tcp = connect(request.port, '127.0.0.1');
      socket.pause();
      tcp.on('connect', () => {
        send({ type: 'ready' });
        socket.resume();
      });
      tcp.on('error', (error) => {
        send({ type: 'error', code: 'NETWORK_ERROR', message: error.message });
        // A paused socket would not read the server's answer to the close, which then waits 30 s.
        socket.resume();
        socket.close();
      });
      let unsent = 0;
      tcp.on('data', (chunk) => {
        unsent += chunk.length;
        socket.send(chunk, { binary: true }, () => {
          unsent -= chunk.length;
          if (unsent < 256 * 1024) tcp.resume();
        });
        if (unsent > 1024 * 1024) tcp.pause();
      });
      tcp.on('end', () => send({ type: 'eof' }));
      tcp.on('close', () => socket.close());
      socket.on('message', (data: Buffer, isBinary) => {
        if (isBinary) {
          if (!tcp.write(data)) {
            socket.pause();
            tcp.once('drain', () => socket.resume());
          }
        } else if (parseStreamControl(data.toString())?.type === 'eof') tcp.end();
      });
      socket.on('close', () => tcp.destroy());
    });
  }

  return {
    opened,
    requests,
    /** Stream sockets open now. */
    streams,
    close: () => {
      control.terminate();
      for (const socket of streams) socket.terminate();
    },
  };
}

/** A user's WebSocket on the user API (shell or tunnel route), with its frames collected. */
export function userStream(url: string, route: string, key: string) {
  const socket = new WebSocket(`${url.replace('http', 'ws')}${route}`, {
    headers: { authorization: `Bearer ${key}` },
    perMessageDeflate: false,
  });
  const controls: unknown[] = [];
  const data: Buffer[] = [];
  socket.on('message', (frame: Buffer, isBinary) => {
    if (isBinary) data.push(frame);
    else controls.push(JSON.parse(frame.toString()));
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  /** Resolves on open; rejects with the HTTP status and body when the upgrade is refused. */
  const opened = new Promise<void>((resolve, reject) => {
    socket.on('open', () => resolve());
    socket.on('unexpected-response', (_request, response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      response.on('end', () =>
        reject(Object.assign(new Error(`HTTP ${response.statusCode}: ${body}`), { status: response.statusCode, body })),
      );
    });
    socket.on('error', (error) => reject(error));
  });
  /** The close code and reason if the socket closes within `ms`, else undefined. */
  const closedWithin = (ms: number) =>
    Promise.race([closed, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), ms))]);
  return { socket, controls, data, closed, closedWithin, opened };
}
