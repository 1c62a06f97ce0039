import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * API keys, session tokens, device keys and provisioning keys are long random secrets, so a fast hash is enough to
 * make a stolen database useless; passwords, which are guessable, use argon2 (see passwords.ts).
 */
export function hashKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

export function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** `Authorization: Bearer <token>` (balena also accepts `?apikey=`), or undefined. */
export function bearerToken(header: string | undefined, query?: unknown): string | undefined {
  if (typeof header === 'string') {
    const match = /^Bearer\s+(\S{1,500})\s*$/i.exec(header);
    if (match) return match[1];
  }
  if (query && typeof query === 'object') {
    const key = (query as Record<string, unknown>).apikey;
    if (typeof key === 'string' && key.length > 0 && key.length <= 500) return key;
  }
  return undefined;
}
