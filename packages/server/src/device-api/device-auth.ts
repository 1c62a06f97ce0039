import { FlotillaError } from '@flotilla/protocol';
import type { FastifyRequest } from 'fastify';
import { bearerToken, hashKey, sameHash } from '../auth/keys.js';
import type { PollLookup, PollRow } from './poll-lookup.js';

/**
 * The device key presented with a device request, hashed; 401 when there is none. Every 401 answered to a request
 * that presented a key (a wrong device or provisioning key) is counted against its address by the app's
 * GuessLimiter (auth/guess-limiter.ts), which refuses the address once it has guessed too often.
 */
export function presentedKeyHash(request: FastifyRequest): string {
  const token = bearerToken(request.headers.authorization, request.query);
  if (!token) throw new FlotillaError('UNAUTHENTICATED', 'missing Authorization: Bearer <device key>');
  return hashKey(token);
}

/**
 * INVARIANT: a device key reads and reports only its own device. An unknown UUID and a wrong key give the same
 * answer, so a key cannot be used to probe which UUIDs exist.
 */
export function requireOwnDevice(row: { key_hash: string | null } | undefined, keyHash: string): void {
  if (!row || row.key_hash === null || !sameHash(row.key_hash, keyHash))
    throw new FlotillaError('UNAUTHENTICATED', 'the key is not valid for this device');
}

/**
 * The device a device key speaks for, checked with requireOwnDevice (an unknown UUID and a wrong key are the same
 * 401): its id and fleet. `lookup` is the app's poll lookup (`ctx.deviceLookup`: the poll cache, whose entries every
 * key change, move and delete drops at once, poll-cache.ts), so a device's log posts and reports read no database
 * to prove who they are. `withPart`: as for the poll lookup (the caller will compute the device's target).
 */
export async function authenticateDevice(
  lookup: PollLookup,
  uuid: string,
  keyHash: string,
  withPart = false,
): Promise<PollRow> {
  const row = await lookup(uuid, withPart);
  requireOwnDevice(row, keyHash);
  if (!row) throw new FlotillaError('UNAUTHENTICATED', 'the key is not valid for this device');
  return row;
}
