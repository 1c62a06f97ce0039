/** The next version after the highest existing one: patch + 1 (pre-release and build parts dropped); 0.0.1 first. */
export function nextVersion(existing: string[]): string {
  let best: [number, number, number] | undefined;
  for (const v of existing) {
    const m = /^(\d+)\.(\d+)\.(\d+)/.exec(v);
    if (!m) continue;
    const parts: [number, number, number] = [Number(m[1]), Number(m[2]), Number(m[3])];
    if (!best || compare(parts, best) > 0) best = parts;
  }
  return best ? `${best[0]}.${best[1]}.${best[2] + 1}` : '0.0.1';
}

function compare(a: [number, number, number], b: [number, number, number]): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}
