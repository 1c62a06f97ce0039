import { readFile, readdir, statfs } from 'node:fs/promises';
import { freemem, networkInterfaces, totalmem } from 'node:os';

export interface Metrics {
  cpu_usage: number | null;
  cpu_temp: number | null;
  memory_usage: number;
  memory_total: number;
  storage_usage: number | null;
  storage_total: number | null;
  ip_address: string;
  mac_address: string;
}

const MB = 1024 * 1024;

/** CPU busy % between two calls, from /proc/stat (null on the first call or off Linux). */
export class CpuSampler {
  private last: { idle: number; total: number } | undefined;

  async sample(): Promise<number | null> {
    let text: string;
    try {
      text = await readFile('/proc/stat', 'utf8');
    } catch {
      return null;
    }
    const fields = (text.split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    const total = fields.reduce((a, b) => a + b, 0);
    const previous = this.last;
    this.last = { idle, total };
    if (!previous || total === previous.total) return null;
    return Math.round(100 * (1 - (idle - previous.idle) / (total - previous.total)) * 10) / 10;
  }
}

/** Highest temperature of /sys/class/thermal zones in °C, or null where the host exposes none. */
export async function cpuTemperature(root = '/sys/class/thermal'): Promise<number | null> {
  let zones: string[];
  try {
    zones = (await readdir(root)).filter((z) => z.startsWith('thermal_zone'));
  } catch {
    return null;
  }
  let max: number | null = null;
  for (const zone of zones) {
    try {
      const milli = Number((await readFile(`${root}/${zone}/temp`, 'utf8')).trim());
      if (Number.isFinite(milli)) max = Math.max(max ?? -Infinity, Math.round(milli / 1000));
    } catch {
      // unreadable zone: skip
    }
  }
  return max;
}

export async function collectMetrics(cpu: CpuSampler, dataDir: string): Promise<Metrics> {
  let storage: { usage: number; total: number } | null = null;
  try {
    const s = await statfs(dataDir);
    storage = {
      total: Math.round((s.blocks * s.bsize) / MB),
      usage: Math.round(((s.blocks - s.bfree) * s.bsize) / MB),
    };
  } catch {
    storage = null;
  }
  const ips: string[] = [];
  const macs: string[] = [];
  for (const [name, addresses] of Object.entries(networkInterfaces())) {
    if (name.startsWith('docker') || name.startsWith('br-') || name.startsWith('veth')) continue;
    for (const a of addresses ?? []) {
      if (a.internal || a.family !== 'IPv4') continue;
      ips.push(a.address);
      if (!macs.includes(a.mac.toUpperCase())) macs.push(a.mac.toUpperCase());
    }
  }
  const cpuUsage = await cpu.sample();
  return {
    cpu_usage: cpuUsage === null ? null : Math.round(cpuUsage),
    cpu_temp: await cpuTemperature(),
    memory_usage: Math.round((totalmem() - freemem()) / MB),
    memory_total: Math.round(totalmem() / MB),
    storage_usage: storage?.usage ?? null,
    storage_total: storage?.total ?? null,
    ip_address: ips.join(' '),
    mac_address: macs.join(' '),
  };
}
