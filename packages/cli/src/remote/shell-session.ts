import {
  FlotillaError,
  STREAM_CHANNEL,
  STREAM_CLOSE_REVOKED,
  USER_ROUTES,
  channelFrame,
  parseStreamControl,
  readChannelFrame,
} from '@flotilla/protocol';
import type WebSocket from 'ws';
import { ReceiveGate, SendWindow } from './send-window.js';
import { closeStream, openStreamSocket, sendControl, streamError, streamUrl } from './stream-socket.js';
import type { StreamEndpoint } from './stream-socket.js';

export interface ShellOptions extends StreamEndpoint {
  /** UUID, 7+ char prefix or name. */
  device: string;
  /** A service's container; absent: the device's host. */
  service?: string | undefined;
  /** One command (run by `sh -c`); absent: an interactive shell. */
  command?: string | undefined;
  /** A pseudo-terminal on the device (stdout only) rather than pipes (stdout and stderr apart). */
  tty: boolean;
  size?: { cols: number; rows: number } | undefined;
}

export interface ShellIo {
  /** Forwarded as the command's stdin, its end as `eof`; undefined: the command gets an empty stdin at once. */
  stdin: NodeJS.ReadableStream | undefined;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

export interface ShellSession {
  /**
   * The command's exit status, once the device said `exit`. Rejects with a FlotillaError when the device or server
   * sent `error`, or the connection ended without an exit status.
   */
  readonly exit: Promise<number>;
  /** The local terminal changed size. */
  resize(cols: number, rows: number): void;
  /** Ends the stream; the device ends the command. `exit` then rejects unless the status already arrived. */
  close(): void;
}

/**
 * Opens a shell (or one command) on a device and pipes it to `io`. Resolves once the server accepted the WebSocket;
 * rejects with the server's error (DEVICE_NOT_FOUND, FORBIDDEN, DEVICE_OFFLINE …) when it refused it.
 * INVARIANT: stdin is not read before the device said `ready`: keystrokes typed early wait in the kernel instead of
 * reaching a relay that has no device half yet.
 */
export async function openShell(options: ShellOptions, io: ShellIo): Promise<ShellSession> {
  const url = streamUrl(options.apiUrl, USER_ROUTES.deviceShell, options.device, {
    service: options.service,
    command: options.command,
    tty: options.tty ? '1' : '0',
    cols: options.size?.cols,
    rows: options.size?.rows,
  });
  const ws = await openStreamSocket(options, url);
  return attach(ws, options, io);
}

function attach(ws: WebSocket, options: ShellOptions, io: ShellIo): ShellSession {
  const gate = new ReceiveGate(ws);
  let ready = false;
  let pendingSize: { cols: number; rows: number } | undefined;
  let outcome: { code: number } | { error: FlotillaError } | undefined;
  let settle: { resolve: (code: number) => void; reject: (error: FlotillaError) => void } | undefined;
  const exit = new Promise<number>((resolve, reject) => {
    settle = { resolve, reject };
  });
  // The caller may await `exit` only after its own setup; a rejection before that is not "unhandled".
  exit.catch(() => undefined);

  const sendWindow = io.stdin ? new SendWindow(ws, io.stdin) : undefined;
  const onData = (chunk: Buffer | string) => {
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    sendWindow?.send(channelFrame(STREAM_CHANNEL.stdin, data));
  };
  const onEnd = () => sendControl(ws, { type: 'eof' });
  const stopStdin = () => {
    if (!io.stdin) return;
    io.stdin.off('data', onData);
    io.stdin.off('end', onEnd);
    io.stdin.pause();
  };
  const finish = (result: { code: number } | { error: FlotillaError }) => {
    if (outcome) return;
    outcome = result;
    stopStdin();
    if ('code' in result) settle?.resolve(result.code);
    else settle?.reject(result.error);
    closeStream(ws);
  };

  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (outcome) return;
    if (isBinary) {
      const frame = readChannelFrame(data);
      // A TTY session has only stdout; a stderr frame (or an unknown channel) is never dropped silently.
      if (frame?.channel === STREAM_CHANNEL.stdout) gate.write(io.stdout, frame.data);
      else if (frame?.channel === STREAM_CHANNEL.stderr) gate.write(io.stderr, frame.data);
      return;
    }
    const control = parseStreamControl(data.toString('utf8'));
    if (!control) return;
    switch (control.type) {
      case 'ready':
        if (ready) return;
        ready = true;
        if (pendingSize) sendControl(ws, { type: 'resize', ...pendingSize });
        if (!io.stdin) sendControl(ws, { type: 'eof' });
        else {
          io.stdin.on('data', onData);
          io.stdin.on('end', onEnd);
          io.stdin.resume();
        }
        return;
      case 'exit':
        return finish({ code: control.code });
      case 'error':
        return finish({ error: streamError(control) });
      default:
        // `eof` from the device (its output ended) needs nothing: `exit` follows. `resize` is ours to send.
        return;
    }
  });
  ws.on('close', (code, reason) => {
    const why = reason.toString('utf8');
    finish({
      error:
        code === STREAM_CLOSE_REVOKED
          ? new FlotillaError('FORBIDDEN', `the server ended the session${why ? `: ${why}` : ''}`)
          : new FlotillaError(
              'NETWORK_ERROR',
              `the connection to ${options.apiUrl} closed before the command ended${why ? ` (${why})` : ''}`,
            ),
    });
  });
  // 'close' follows every 'error'; the listener only keeps an error from being thrown as unhandled.
  ws.on('error', () => undefined);
  ws.resume();

  return {
    exit,
    resize(cols, rows) {
      if (outcome) return;
      if (ready) sendControl(ws, { type: 'resize', cols, rows });
      else pendingSize = { cols, rows };
    },
    close() {
      finish({ error: new FlotillaError('NETWORK_ERROR', 'the session was closed here') });
    },
  };
}
