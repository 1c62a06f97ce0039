import { readFile } from 'node:fs/promises';
import { rootCertificates } from 'node:tls';
import { FlotillaError, type FetchAnswer, type FetchLike } from '@flotilla/protocol';
import { Agent, fetch as undiciFetch } from 'undici';

/**
 * A server with its own CA (`flotilla-server --tls-self-signed`) is trusted through that CA, in addition to the
 * public roots: `flotilla login --ca <file>` stores it with the credentials, `FLOTILLA_CA=<file>` overrides it.
 * Node's global fetch takes no CA, so the calls go through undici's fetch with an Agent that carries it.
 * INVARIANT: every connection the CLI makes to the server (API calls, event streams, WebSockets) gets these CAs.
 */
export function trustedCas(ca: string | undefined): string[] | undefined {
  return ca === undefined ? undefined : [...rootCertificates, ca];
}

/** A fetch that trusts `ca` too; undefined (the platform's fetch) without one. */
export function trustingFetch(ca: string | undefined): FetchLike | undefined {
  const cas = trustedCas(ca);
  if (!cas) return undefined;
  const dispatcher = new Agent({ connect: { ca: cas } });
  // undici's Response is the one the global fetch returns; only its declared types differ from the DOM lib's.
  return (url, init) => undiciFetch(url, { ...init, dispatcher }) as unknown as Promise<FetchAnswer>;
}

/** The PEM CA certificate in `file`, or VALIDATION_FAILED naming the file. */
export async function readCaFile(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new FlotillaError('VALIDATION_FAILED', `cannot read the CA file ${file}: ${(error as Error).message}`);
  }
  if (!/-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----/.test(text))
    throw new FlotillaError('VALIDATION_FAILED', `${file} holds no PEM certificate`);
  return text;
}
