import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import type { RegistryStorage } from './storage.js';

/** What a registry route handler gets: the parsed request and the storage. */
export interface HandlerContext {
  storage: RegistryStorage;
  request: FastifyRequest;
  reply: FastifyReply;
  query: URLSearchParams;
  /** The raw request body; Fastify does not read it in the registry scope. */
  body: Readable;
}
