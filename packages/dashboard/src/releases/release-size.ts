import type { Release } from '@flotilla/protocol';

/** `512 B`, `1.5 KiB`, `20.0 MiB`: binary units, one decimal past bytes, as the CLI prints sizes. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/**
 * What a release's images weigh together, in words: `—` when the registry holds none of them, `≥ n` when it holds
 * only some (the rest are elsewhere or not pushed), so a partial sum never passes for the whole.
 */
export function releaseSize(release: Pick<Release, 'services'>): string {
  const known = release.services.flatMap((s) => (s.imageSize === null ? [] : [s.imageSize]));
  if (known.length === 0) return '—';
  const total = formatBytes(known.reduce((a, b) => a + b, 0));
  return known.length < release.services.length ? `≥ ${total}` : total;
}

/** One service's image size, or `—` when unknown. */
export function imageSizeText(size: number | null): string {
  return size === null ? '—' : formatBytes(size);
}
