import { rootCertificates } from 'node:tls';
import { decodeRootCa } from '@flotilla/protocol';

/**
 * The CAs the agent verifies the control plane with: the usual public roots plus config.json's `balenaRootCA` (a
 * control plane with its own CA, as `flotilla-server --tls-self-signed` makes). Undefined without `balenaRootCA`:
 * Node's own roots then apply, unchanged.
 * INVARIANT: every connection to the control plane (target state, reports, logs, deltas, the WebSocket and the
 * streams it asks for) passes this as its `ca`; one left out fails its first request against such a server.
 */
export function controlPlaneCas(balenaRootCA: string | undefined): string[] | undefined {
  if (balenaRootCA === undefined) return undefined;
  const extra = decodeRootCa(balenaRootCA);
  if (!extra) throw new Error('config.json balenaRootCA holds no base64-encoded PEM certificate');
  return [...rootCertificates, ...extra];
}
