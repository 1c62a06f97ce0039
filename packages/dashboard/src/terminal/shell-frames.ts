import {
  STREAM_CHANNEL,
  type ShellQuery,
  type StreamControl,
  USER_ROUTES,
  channelFrame,
  parseStreamControl,
  path,
  readChannelFrame,
} from '@flotilla/protocol';

/**
 * The browser's side of a shell stream (packages/protocol/src/remote-access.ts): what the terminal sends and how
 * what arrives is told apart. Pure, so it is unit-tested without a browser.
 */

const encoder = new TextEncoder();

/** Keystrokes (xterm's `onData`, UTF-16 text) as one stdin frame of UTF-8. */
export function stdinFrame(text: string): Uint8Array {
  return channelFrame(STREAM_CHANNEL.stdin, encoder.encode(text));
}

/** xterm's `onBinary` data (one char per byte, e.g. some mouse reports) as one stdin frame of those bytes. */
export function stdinBinaryFrame(bytes: string): Uint8Array {
  return channelFrame(
    STREAM_CHANNEL.stdin,
    Uint8Array.from(bytes, (c) => c.charCodeAt(0) & 0xff),
  );
}

/** The `resize` control message, as a text frame. */
export function resizeMessage(cols: number, rows: number): string {
  return JSON.stringify({ type: 'resize', cols, rows } satisfies StreamControl);
}

export type ShellMessage = { kind: 'output'; data: Uint8Array } | { kind: 'control'; control: StreamControl };

/**
 * One frame from the server: output (stdout or stderr, both drawn in the terminal), or a control message.
 * Undefined for what this version does not know (an unknown channel or control type, stdin echoed back): ignored.
 */
export function readShellMessage(frame: ArrayBuffer | string): ShellMessage | undefined {
  if (typeof frame === 'string') {
    const control = parseStreamControl(frame);
    return control && { kind: 'control', control };
  }
  const piece = readChannelFrame(new Uint8Array(frame));
  if (!piece || piece.channel === STREAM_CHANNEL.stdin) return undefined;
  return { kind: 'output', data: piece.data };
}

/** The WebSocket URL of a shell on the device, on the page's own origin (the cookie authenticates it). */
export function shellUrl(page: { protocol: string; host: string }, uuid: string, query: ShellQuery): string {
  const scheme = page.protocol === 'https:' ? 'wss:' : 'ws:';
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined) params.set(key, String(value));
  return `${scheme}//${page.host}${path(USER_ROUTES.deviceShell.path, { uuid })}?${params}`;
}

/** What the status line says once the stream ended. Plain text: the message is the device's or server's. */
export function endedStatus(control: StreamControl | undefined): string {
  if (control?.type === 'exit') return `The shell exited with status ${control.code}.`;
  if (control?.type === 'error') return `${control.message} (${control.code})`;
  return 'The connection to the device closed.';
}
