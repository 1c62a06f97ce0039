import { FlotillaError, serviceNameSchema } from '@flotilla/protocol';

/** One `flotilla tunnel` mapping: a local port forwarded to a port of the device's host or of one service. */
export interface TunnelMapping {
  /** 0: the OS picks a free port. */
  localPort: number;
  /** Absent: the device's host. */
  service?: string;
  devicePort: number;
}

function invalid(text: string, why: string): FlotillaError {
  return new FlotillaError('VALIDATION_FAILED', `invalid mapping ${JSON.stringify(text)}: ${why}`);
}

/** A port typed by the user: decimal digits only (no `0x`, no `1e3`), within [min, 65535]. */
export function parsePort(text: string, min: 0 | 1): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= min && port <= 65_535 ? port : undefined;
}

/** `<localPort>:<devicePort>` or `<localPort>:<service>:<devicePort>`, e.g. `4321:22`, `8080:web:80`. */
export function parseTunnelMapping(text: string): TunnelMapping {
  const parts = text.split(':');
  if (parts.length !== 2 && parts.length !== 3)
    throw invalid(text, 'give <local port>:<device port> or <local port>:<service>:<device port>');
  const localPort = parsePort(parts[0]!, 0);
  if (localPort === undefined) throw invalid(text, `local port ${JSON.stringify(parts[0])} is not 0-65535`);
  const devicePort = parsePort(parts[parts.length - 1]!, 1);
  if (devicePort === undefined)
    throw invalid(text, `device port ${JSON.stringify(parts[parts.length - 1])} is not 1-65535`);
  if (parts.length === 2) return { localPort, devicePort };
  const service = serviceNameSchema.safeParse(parts[1]);
  if (!service.success)
    throw invalid(text, `service ${JSON.stringify(parts[1])}: ${service.error.issues[0]?.message ?? 'invalid'}`);
  return { localPort, service: service.data, devicePort };
}

/** Every mapping parsed; a local port given twice is refused (0, "any free port", may repeat). */
export function parseTunnelMappings(texts: readonly string[]): TunnelMapping[] {
  if (texts.length === 0) throw new FlotillaError('VALIDATION_FAILED', 'give at least one mapping, e.g. 4321:22');
  const mappings = texts.map(parseTunnelMapping);
  const seen = new Set<number>();
  for (const [i, m] of mappings.entries()) {
    if (m.localPort === 0) continue;
    if (seen.has(m.localPort)) throw invalid(texts[i]!, `local port ${m.localPort} is already used by another mapping`);
    seen.add(m.localPort);
  }
  return mappings;
}

/** `22`, or `web:80`: what a mapping reaches on the device, as the tunnel prints it. */
export function describeTarget(mapping: TunnelMapping): string {
  return mapping.service === undefined ? String(mapping.devicePort) : `${mapping.service}:${mapping.devicePort}`;
}
