import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { TokenSigner } from './token.js';

/**
 * Upload IDs bound to who opened them: 8 random bytes and 8 bytes of a MAC over (random part, subject, repository
 * storage key), written as a UUID. The binding needs no stored state, so it holds across restarts and nodes that
 * share the token secret. INVARIANT: an upload is touched only by the subject that opened it, in the repository it
 * was opened in; anyone else gets BLOB_UPLOAD_UNKNOWN, exactly as for an ID that never existed.
 */
export function newUploadId(signer: TokenSigner, subject: string, key: string): string {
  const nonce = randomBytes(8).toString('hex');
  const hex = nonce + binding(signer, nonce, subject, key).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function uploadBelongsTo(signer: TokenSigner, id: string, subject: string, key: string): boolean {
  const hex = id.replaceAll('-', '');
  if (!/^[0-9a-f]{32}$/.test(hex)) return false;
  return timingSafeEqual(Buffer.from(hex.slice(16), 'hex'), binding(signer, hex.slice(0, 16), subject, key));
}

function binding(signer: TokenSigner, nonce: string, subject: string, key: string): Buffer {
  return signer.tag('upload', `${nonce}\0${subject}\0${key}`).subarray(0, 8);
}
