import { DEVICE_ROUTES, type OsDeltaAnswer, type OsDeltaRequest, osDeltaAnswerSchema, path } from '@flotilla/protocol';
import { type DeltaEndpoint, failure } from '../deltas/delta-client.js';
import { httpExchange } from '../util/http.js';
import type { ResumableDownload } from '../util/resumable-download.js';

const IDLE_TIMEOUT_MS = 30_000;

/** One ask for an OS delta (DEVICE_ROUTES.osDeltaRequest). */
export async function askOsDelta(
  endpoint: DeltaEndpoint,
  ask: OsDeltaRequest,
  signal: AbortSignal,
): Promise<OsDeltaAnswer> {
  const answer = await httpExchange(
    new URL(path(DEVICE_ROUTES.osDeltaRequest.path, { uuid: endpoint.uuid }), endpoint.apiEndpoint),
    {
      method: 'POST',
      headers: { authorization: `Bearer ${endpoint.deviceApiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(ask),
      signal,
      idleTimeoutMs: IDLE_TIMEOUT_MS,
      maxBodyBytes: 64 * 1024,
      ca: endpoint.ca,
    },
  );
  if (answer.status !== 200 && answer.status !== 202)
    throw failure(answer.status, answer.body, 'asking for an OS delta');
  return osDeltaAnswerSchema.parse(JSON.parse(answer.body.toString('utf8')));
}

/** The OS delta's bytes into `file`, resumable (util/resumable-download.ts), as an app delta's. */
export function osDeltaDownload(
  endpoint: DeltaEndpoint,
  downloadPath: string,
  file: string,
  size: number,
  signal: AbortSignal,
): ResumableDownload {
  return {
    url: new URL(downloadPath, endpoint.apiEndpoint),
    headers: () => ({ authorization: `Bearer ${endpoint.deviceApiKey}` }),
    file,
    size,
    what: 'OS delta download',
    failure: (status, body) => failure(status, body, 'OS delta download'),
    signal,
    ca: endpoint.ca,
  };
}
