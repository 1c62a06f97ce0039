import { z } from 'zod';
import { serviceNameSchema } from './ids.js';

/**
 * Remote access: shells, TCP tunnels and public device URLs, carried over WebSockets the device dials out.
 *
 * A user (CLI, dashboard) opens a WebSocket on the user API: `GET /api/v1/devices/:uuid/shell` or `…/tunnel`.
 * The server records the session, then asks the device over its connection (`GET /device/v1/:uuid/connect`) with
 * a `stream-open` message; the agent dials a second WebSocket, `GET /device/v1/:uuid/streams/:id` (device key),
 * and the server relays frames between the two sockets unchanged, counting bytes. One WebSocket per stream
 * (per shell, per tunnelled TCP connection), so TCP's own flow control gives back-pressure end to end: each relay
 * stops reading one side while the other side has more than a bounded amount unsent.
 *
 * Frames, the same on both halves (the server relays them as they are):
 * - binary, shell streams: one channel byte (STREAM_CHANNEL), then data: stdin from the user; stdout and stderr
 *   from the device (a TTY session has only stdout);
 * - binary, tunnel streams: the TCP bytes, nothing added;
 * - text: one JSON `StreamControl` message (ready, resize, eof, exit, error).
 * A stream ends when either WebSocket closes; `exit` or `error` says why before that.
 */

/** First byte of a binary frame on a shell stream. */
export const STREAM_CHANNEL = { stdin: 0, stdout: 1, stderr: 2 } as const;
export type StreamChannel = (typeof STREAM_CHANNEL)[keyof typeof STREAM_CHANNEL];

/** The kinds recorded in the audit log. */
export const remoteSessionKindSchema = z.enum(['shell', 'tunnel', 'public-url']);
export type RemoteSessionKind = z.infer<typeof remoteSessionKindSchema>;

/** Random, unguessable: names the device's half of one stream. */
export const streamIdSchema = z.string().regex(/^[0-9a-f]{32}$/);

const terminalSize = z.coerce.number().int().min(1).max(10_000);
const port = z.coerce.number().int().min(1).max(65_535);
/** The one-shot command, as `ssh` takes it: run by `sh -c` on the device or in the container. */
const command = z.string().min(1).max(65_536);

/** Query of `GET /api/v1/devices/:uuid/shell` (a WebSocket upgrade). */
export const shellQuerySchema = z.object({
  /** A service of the device's app: a shell in its container (engine exec); absent: the device's host. */
  service: serviceNameSchema.optional(),
  /** Run this instead of an interactive shell. */
  command: command.optional(),
  /** `1` (default): a pseudo-terminal; `0`: plain pipes with stdout and stderr kept apart (scripts, pipes). */
  tty: z.enum(['0', '1']).default('1'),
  cols: terminalSize.optional(),
  rows: terminalSize.optional(),
});
export type ShellQuery = z.input<typeof shellQuerySchema>;

/** Query of `GET /api/v1/devices/:uuid/tunnel` (a WebSocket upgrade): one TCP connection to a port on the device. */
export const tunnelQuerySchema = z.object({
  port,
  /** A service of the device's app: its container's address; absent: the device's host (127.0.0.1). */
  service: serviceNameSchema.optional(),
});
export type TunnelQuery = z.input<typeof tunnelQuerySchema>;

/** What the device is asked to open. */
export const streamRequestSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('shell'),
    service: serviceNameSchema.optional(),
    command: command.optional(),
    tty: z.boolean(),
    cols: terminalSize.optional(),
    rows: terminalSize.optional(),
  }),
  z.object({ kind: z.literal('tcp'), port, service: serviceNameSchema.optional() }),
]);
export type StreamRequest = z.infer<typeof streamRequestSchema>;

/**
 * Server → device, on the device connection: dial `GET /device/v1/:uuid/streams/:id` and serve `request` on it.
 * A device that cannot serve it (no such service, port closed) still dials, sends `error` and closes, so the user
 * learns why at once.
 */
export const streamOpenMessageSchema = z.object({
  type: z.literal('stream-open'),
  id: streamIdSchema,
  request: streamRequestSchema,
});
export type StreamOpenMessage = z.infer<typeof streamOpenMessageSchema>;

/** Text frames of a stream. */
export const streamControlSchema = z.discriminatedUnion('type', [
  /** Device → user: the shell runs, or the TCP connection is open. */
  z.object({ type: z.literal('ready') }),
  /** User → device: the terminal changed size. */
  z.object({ type: z.literal('resize'), cols: terminalSize, rows: terminalSize }),
  /** Either way: this side sends no more data (stdin closed; TCP half-close). */
  z.object({ type: z.literal('eof') }),
  /** Device → user: the command ended; `code` is its exit status (128 + n when killed by signal n). */
  z.object({ type: z.literal('exit'), code: z.number().int() }),
  /** Device or server → user: the stream could not open or ended abnormally (a FlotillaError code). */
  z.object({ type: z.literal('error'), code: z.string().max(64), message: z.string().max(2_000) }),
]);
export type StreamControl = z.infer<typeof streamControlSchema>;

/** Parses a text frame; undefined when it is not a control message this version knows (ignore it). */
export function parseStreamControl(text: string): StreamControl | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  const parsed = streamControlSchema.safeParse(raw);
  return parsed.success ? parsed.data : undefined;
}

/**
 * A binary shell frame: the channel byte, then `data`.
 * INVARIANT: no `Buffer` here: the dashboard calls it in the browser, where there is none.
 */
export function channelFrame(channel: StreamChannel, data: Uint8Array): Uint8Array {
  const frame = new Uint8Array(data.length + 1);
  frame[0] = channel;
  frame.set(data, 1);
  return frame;
}

/**
 * Splits a binary shell frame; undefined for an empty or unknown-channel frame. `data` is a view of the same kind
 * as `frame` (a Buffer's is a Buffer: `subarray` keeps the class), sharing its memory.
 */
export function readChannelFrame<T extends Uint8Array>(frame: T): { channel: StreamChannel; data: T } | undefined {
  const channel = frame[0];
  if (channel !== 0 && channel !== 1 && channel !== 2) return undefined;
  // Buffer and Uint8Array both return their own class from subarray.
  return { channel, data: frame.subarray(1) as T };
}

/** Close code a relay uses when an authority ends the stream (revoked key, device deleted, URL disabled). */
export const STREAM_CLOSE_REVOKED = 4403;

// ------------------------------------------------------------------------------------------ user API bodies
export const publicUrlSchema = z.object({
  enabled: z.boolean(),
  /** The device port the URL reaches (its HTTP service), when enabled. */
  port: z.number().int().nullable(),
  /** Where the device is reachable, when enabled. */
  url: z.string().nullable(),
});
export type PublicUrl = z.infer<typeof publicUrlSchema>;

export const enablePublicUrlRequestSchema = z.object({ port: z.number().int().min(1).max(65_535).default(80) });
export type EnablePublicUrlRequest = z.input<typeof enablePublicUrlRequestSchema>;

/** One audit record: who reached which device, how, when, and how much crossed. */
export const remoteSessionSchema = z.object({
  id: z.string(),
  kind: remoteSessionKindSchema,
  device: z.object({ uuid: z.string(), name: z.string().nullable() }),
  /** The user who opened it; null for a public URL's visitors. */
  user: z.object({ id: z.number().int(), username: z.string() }).nullable(),
  /** `host`, a service name, `port 22`, `service db port 5432` … */
  target: z.string(),
  /** Where the user connected from. */
  remoteAddress: z.string().nullable(),
  startedAt: z.string(),
  endedAt: z.string().nullable(),
  /** Bytes from the user to the device, and from the device to the user. */
  bytesIn: z.number().int(),
  bytesOut: z.number().int(),
  /** Why it ended: `closed`, `revoked`, `device-deleted`, `disabled`, `device-offline`, `error: …` */
  endReason: z.string().nullable(),
});
export type RemoteSession = z.infer<typeof remoteSessionSchema>;

export const remoteSessionsQuerySchema = z.object({
  /** Only this device's sessions (UUID, prefix or name, as elsewhere). */
  device: z.string().min(1).max(100).optional(),
  limit: z.coerce.number().int().min(1).max(1_000).default(100),
});
