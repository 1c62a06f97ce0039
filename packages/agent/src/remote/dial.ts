import WebSocket from 'ws';
import { DEVICE_ROUTES, path } from '@flotilla/protocol';

export interface DeviceCredentials {
  apiEndpoint: string;
  uuid: string;
  deviceApiKey: string;
  /** CAs to verify the control plane with (util/trust.ts). */
  ca?: string[] | undefined;
}

/** The largest frame the agent accepts; the user's side is cut into smaller frames by the relay's peer anyway. */
export const MAX_FRAME_BYTES = 1024 * 1024;

/**
 * Dials the device's half of stream `id` (`GET /device/v1/:uuid/streams/:id`, device key). The WebSocket is handed
 * over as soon as it is created, so a stop during the handshake can end it; `opened` settles with the handshake.
 */
export function dialStream(credentials: DeviceCredentials, id: string): { ws: WebSocket; opened: Promise<void> } {
  const url = new URL(path(DEVICE_ROUTES.stream.path, { uuid: credentials.uuid, id }), credentials.apiEndpoint);
  const tls = url.protocol === 'https:';
  url.protocol = tls ? 'wss:' : 'ws:';
  const ws = new WebSocket(url, {
    headers: { authorization: `Bearer ${credentials.deviceApiKey}` },
    handshakeTimeout: 15_000,
    ...(credentials.ca ? { ca: credentials.ca } : {}),
    maxPayload: MAX_FRAME_BYTES,
    // Shell and tunnel bytes are mostly compressed or tiny already; deflate would cost CPU and memory per stream.
    perMessageDeflate: false,
    // WARNING: a client must mask its frames (RFC 6455 §5.3) so that bytes an attacker chooses cannot pass for HTTP to
    // a cleartext intermediary that does not speak WebSocket and poison its cache (§10.3). Inside TLS no intermediary
    // sees them, so the all-zero key is used there: ws then sends the data as it is, where a random key costs a copy
    // and a byte-wise XOR in JavaScript where ws finds no native `bufferutil` (without TurboFan, as the agent runs:
    // ~10× less throughput, measured by bench/remote-tunnel.mjs). Over cleartext the key stays random.
    ...(tls ? { generateMask: (mask: Buffer) => mask.fill(0) } : {}),
  });
  const opened = new Promise<void>((resolve, reject) => {
    // Settled once; the listeners left behind after the handshake are harmless (and keep 'error' handled).
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('close', () => reject(new Error('closed during the handshake')));
  });
  return { ws, opened };
}
