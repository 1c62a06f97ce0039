// Footprint of one process from /proc: resident memory split by kind, and CPU time.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** VmRSS, RssAnon and RssFile+RssShmem of `pid`, in MB. */
export function memoryMb(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, anon: kb('RssAnon') / 1024, file: (kb('RssFile') + kb('RssShmem')) / 1024 };
}

/** utime + stime of `pid` in clock ticks. */
export function cpuTicks(pid) {
  // The command name in field 2 may hold spaces and parentheses: split after its closing one.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/**
 * Samples `pid` once a second for `seconds`. Returns the per-second samples (MB, and CPU % of one core for that
 * second) and the CPU % over the whole window, computed from total ticks so rounding per second does not add up.
 */
export async function measureIdle(pid, seconds) {
  const samples = [];
  const t0 = performance.now();
  const c0 = cpuTicks(pid);
  let previous = { at: t0, ticks: c0 };
  for (let i = 0; i < seconds; i++) {
    await sleep(1_000);
    const now = { at: performance.now(), ticks: cpuTicks(pid) };
    samples.push({
      ...memoryMb(pid),
      cpu: (100 * (now.ticks - previous.ticks)) / TICKS_PER_SECOND / ((now.at - previous.at) / 1000),
    });
    previous = now;
  }
  const cpuPercent = (100 * (previous.ticks - c0)) / TICKS_PER_SECOND / ((previous.at - t0) / 1000);
  return { samples, cpuPercent, tickMs: 1000 / TICKS_PER_SECOND };
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** median, p99 and max of a list of numbers. */
export function summarize(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return { median: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1), min: sorted[0] };
}
