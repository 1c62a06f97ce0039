import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import type { RegistryLimits } from './limits.js';
import type { RegistryStorage } from './storage.js';
import type { TokenSigner } from './token.js';

/** What a registry route handler gets: the parsed request, who makes it, where the repository is, and the storage. */
export interface HandlerContext {
  storage: RegistryStorage;
  request: FastifyRequest;
  reply: FastifyReply;
  query: URLSearchParams;
  /** The raw request body; Fastify does not read it in the registry scope. */
  body: Readable;
  /**
   * The repository addressed: `name` is what clients see (URLs, Location headers), `key` where it is stored.
   * INVARIANT: storage is only ever addressed by `key`.
   */
  repository: { name: string; key: string; quotaGroup: () => Promise<string[]> };
  /** Who makes the request (RegistryAccess.subjectOf); uploads are bound to it. */
  subject: string;
  /** Signs and checks upload IDs. */
  signer: TokenSigner;
  limits: RegistryLimits;
}
