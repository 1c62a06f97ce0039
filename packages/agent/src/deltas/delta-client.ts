import { spawn } from 'node:child_process';
import {
  DEVICE_ROUTES,
  type DeltaAnswer,
  type DeltaOutcome,
  FlotillaError,
  deltaAnswerSchema,
  isErrorBody,
  path,
} from '@flotilla/protocol';
import { httpExchange } from '../util/http.js';
import type { ResumableDownload } from '../util/resumable-download.js';

const IDLE_TIMEOUT_MS = 30_000;
const MAX_ANSWER_BYTES = 8 * 1024 * 1024;

export interface DeltaEndpoint {
  apiEndpoint: string;
  uuid: string;
  deviceApiKey: string;
  /** CAs to verify the control plane with (util/trust.ts). */
  ca?: string[] | undefined;
}

/** The error for a refused delta exchange: the codes a caller acts on kept, any other as UNEXPECTED_RESPONSE. */
export function failure(status: number, body: Buffer, what: string): FlotillaError {
  let detail = '';
  try {
    const parsed: unknown = JSON.parse(body.toString('utf8'));
    if (isErrorBody(parsed)) {
      const kept = ['DELTA_UNAVAILABLE', 'IMAGE_NOT_FOUND', 'OS_RELEASE_NOT_FOUND'] as const;
      if ((kept as readonly string[]).includes(parsed.error.code))
        return new FlotillaError(parsed.error.code, parsed.error.message);
      detail = `: ${parsed.error.message} (${parsed.error.code})`;
    }
  } catch {
    // not JSON: the status says enough
  }
  return new FlotillaError('UNEXPECTED_RESPONSE', `${what} failed with HTTP ${status}${detail}`);
}

/**
 * One JSON POST to a route of this device (`routePath`, its `:uuid` filled in) with the device key: the answer's body
 * when its status is one of `ok`, else the `failure` for `what`.
 */
export async function postToDeviceRoute(
  endpoint: DeltaEndpoint,
  routePath: string,
  body: unknown,
  ok: readonly number[],
  what: string,
  signal: AbortSignal,
): Promise<Buffer> {
  const answer = await httpExchange(new URL(path(routePath, { uuid: endpoint.uuid }), endpoint.apiEndpoint), {
    method: 'POST',
    headers: { authorization: `Bearer ${endpoint.deviceApiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal,
    idleTimeoutMs: IDLE_TIMEOUT_MS,
    maxBodyBytes: MAX_ANSWER_BYTES,
    ca: endpoint.ca,
  });
  if (!ok.includes(answer.status)) throw failure(answer.status, answer.body, what);
  return answer.body;
}

/** One ask for the delta between two images of the fleet (DEVICE_ROUTES.deltaRequest). */
export async function askDelta(
  endpoint: DeltaEndpoint,
  fromImageId: number,
  toImageId: number,
  signal: AbortSignal,
): Promise<DeltaAnswer> {
  const body = await postToDeviceRoute(
    endpoint,
    DEVICE_ROUTES.deltaRequest.path,
    { fromImageId, toImageId },
    [200, 202],
    'asking for a delta',
    signal,
  );
  return deltaAnswerSchema.parse(JSON.parse(body.toString('utf8')));
}

/** Tells the server what became of a delta; best effort (the caller logs a failure). */
export async function reportOutcome(
  endpoint: DeltaEndpoint,
  outcome: DeltaOutcome,
  signal: AbortSignal,
): Promise<void> {
  await postToDeviceRoute(
    endpoint,
    DEVICE_ROUTES.deltaOutcome.path,
    outcome,
    [204],
    'reporting a delta outcome',
    signal,
  );
}

/** The download of a delta's bytes (DeltaDescriptor.path) into `file`, resumable (util/resumable-download.ts). */
export function deltaDownload(
  endpoint: DeltaEndpoint,
  downloadPath: string,
  file: string,
  size: number,
  signal: AbortSignal,
  onBytes?: (bytesOnDisk: number) => void,
  what = 'delta download',
): ResumableDownload {
  return {
    url: new URL(downloadPath, endpoint.apiEndpoint),
    headers: () => ({ authorization: `Bearer ${endpoint.deviceApiKey}` }),
    file,
    size,
    what,
    failure: (status, body) => failure(status, body, what),
    onBytes,
    signal,
    ca: endpoint.ca,
  };
}

/** Whether xdelta3 runs here: a device without it never downloads a delta it cannot apply. */
export function xdelta3Runs(): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn('xdelta3', ['-V'], { stdio: 'ignore' });
    child.on('error', () => resolve(false));
    child.on('exit', (code) => resolve(code === 0));
  });
}
