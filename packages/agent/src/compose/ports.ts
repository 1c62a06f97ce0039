/**
 * Compose `ports` entries → engine ExposedPorts + PortBindings. Accepted forms (as the protocol schema allows):
 * `80`, `"80"`, `"8080:80"`, `"127.0.0.1:8080:80/udp"`, ranges `"8000-8001:9000-9001"`.
 */
export interface PortMapping {
  exposed: Record<string, Record<string, never>>;
  bindings: Record<string, Array<{ HostIp: string; HostPort: string }>>;
}

function range(spec: string): number[] {
  const [from, to] = spec.split('-').map(Number);
  if (from === undefined || Number.isNaN(from)) throw new Error(`invalid port ${spec}`);
  const end = to === undefined ? from : to;
  if (end < from) throw new Error(`invalid port range ${spec}`);
  return Array.from({ length: end - from + 1 }, (_, i) => from + i);
}

export function parsePorts(ports: ReadonlyArray<string | number>): PortMapping {
  const out: PortMapping = { exposed: {}, bindings: {} };
  for (const entry of ports) {
    const text = String(entry);
    const [main, proto = 'tcp'] = text.split('/') as [string, string?];
    const parts = main.split(':');
    const containerPart = parts.pop() as string;
    const hostPart = parts.pop();
    const hostIp = parts.pop() ?? '';
    const containerPorts = range(containerPart);
    const hostPorts = hostPart === undefined || hostPart === '' ? undefined : range(hostPart);
    if (hostPorts && hostPorts.length !== containerPorts.length)
      throw new Error(`port ranges differ in length: ${text}`);
    containerPorts.forEach((port, i) => {
      const key = `${port}/${proto}`;
      out.exposed[key] = {};
      if (hostPart !== undefined) {
        const binding = { HostIp: hostIp, HostPort: hostPorts ? String(hostPorts[i]) : '' };
        (out.bindings[key] ??= []).push(binding);
      }
    });
  }
  return out;
}

/** Compose duration (`1m30s`, `500ms`) → nanoseconds, as the engine wants for healthchecks. */
export function durationToNs(text: string): number {
  const units: Record<string, number> = { us: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  let total = 0;
  for (const match of text.matchAll(/(\d+(?:\.\d+)?)(us|ms|s|m|h)/g))
    total += Number(match[1]) * (units[match[2] as string] ?? 0);
  return Math.round(total);
}
