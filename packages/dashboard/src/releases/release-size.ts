import { type Release, formatBytes } from '@flotilla/protocol';

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
