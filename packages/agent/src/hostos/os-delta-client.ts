import { DEVICE_ROUTES, type OsDeltaAnswer, type OsDeltaRequest, osDeltaAnswerSchema } from '@flotilla/protocol';
import { type DeltaEndpoint, postToDeviceRoute } from '../deltas/delta-client.js';

/** One ask for an OS delta (DEVICE_ROUTES.osDeltaRequest). */
export async function askOsDelta(
  endpoint: DeltaEndpoint,
  ask: OsDeltaRequest,
  signal: AbortSignal,
): Promise<OsDeltaAnswer> {
  const body = await postToDeviceRoute(
    endpoint,
    DEVICE_ROUTES.osDeltaRequest.path,
    ask,
    [200, 202],
    'asking for an OS delta',
    signal,
  );
  return osDeltaAnswerSchema.parse(JSON.parse(body.toString('utf8')));
}
