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

/** One ask for the delta between two images of the fleet (DEVICE_ROUTES.deltaRequest). */
export async function askDelta(
  endpoint: DeltaEndpoint,
  fromImageId: number,
  toImageId: number,
  signal: AbortSignal,
): Promise<DeltaAnswer> {
  const answer = await httpExchange(
    new URL(path(DEVICE_ROUTES.deltaRequest.path, { uuid: endpoint.uuid }), endpoint.apiEndpoint),
    {
      method: 'POST',
      headers: { authorization: `Bearer ${endpoint.deviceApiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ fromImageId, toImageId }),
      signal,
      idleTimeoutMs: IDLE_TIMEOUT_MS,
      maxBodyBytes: MAX_ANSWER_BYTES,
      ca: endpoint.ca,
    },
  );
  if (answer.status !== 200 && answer.status !== 202) throw failure(answer.status, answer.body, 'asking for a delta');
  return deltaAnswerSchema.parse(JSON.parse(answer.body.toString('utf8')));
}

/** Tells the server what became of a delta; best effort (the caller logs a failure). */
export async function reportOutcome(
  endpoint: DeltaEndpoint,
  outcome: DeltaOutcome,
  signal: AbortSignal,
): Promise<void> {
  const answer = await httpExchange(
    new URL(path(DEVICE_ROUTES.deltaOutcome.path, { uuid: endpoint.uuid }), endpoint.apiEndpoint),
    {
      method: 'POST',
      headers: { authorization: `Bearer ${endpoint.deviceApiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(outcome),
      signal,
      idleTimeoutMs: IDLE_TIMEOUT_MS,
      maxBodyBytes: MAX_ANSWER_BYTES,
      ca: endpoint.ca,
    },
  );
  if (answer.status !== 204) throw failure(answer.status, answer.body, 'reporting a delta outcome');
}

/** The download of a delta's bytes (DeltaDescriptor.path) into `file`, resumable (util/resumable-download.ts). */
export function deltaDownload(
  endpoint: DeltaEndpoint,
  downloadPath: string,
  file: string,
  size: number,
  signal: AbortSignal,
  onBytes?: (bytesOnDisk: number) => void,
): ResumableDownload {
  return {
    url: new URL(downloadPath, endpoint.apiEndpoint),
    headers: () => ({ authorization: `Bearer ${endpoint.deviceApiKey}` }),
    file,
    size,
    what: 'delta download',
    failure: (status, body) => failure(status, body, 'delta download'),
    onBytes,
    signal,
    ca: endpoint.ca,
  };
}
