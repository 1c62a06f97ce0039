import type { FastifyRequest } from 'fastify';
import { RegistryError } from './errors.js';
import type { AccessGrant, TokenSigner } from './token.js';

export type RegistryAction = 'pull' | 'push';

/** Where a repository lives on disk and which repositories share its storage quota. */
export interface RepositoryLocation {
  /**
   * Storage key (a relative path below the storage's repositories folder). INVARIANT: derived from the owner's
   * identity, never from a reusable name, so a new owner of the same name starts from an empty repository.
   */
  key: string;
  /** Key prefixes whose blobs count against the same quota as this repository (its organization's fleets). */
  quotaGroup: () => Promise<string[]>;
}

/**
 * What the registry needs to know about identities, passed in so the registry can be tested without a database.
 * `P` is whatever the host application uses as a principal.
 */
export interface RegistryAccess<P> {
  /**
   * Basic-auth credentials from address `source` → a principal, or null when they are wrong; may throw (e.g.
   * RATE_LIMITED when `source` has guessed too often).
   */
  authenticate(username: string, password: string, source: string): Promise<P | null>;
  /** Whether the principal may do `action` on `repository`. */
  authorize(principal: P, repository: string, action: RegistryAction): Promise<boolean>;
  /** Stable subject (who): in tokens, and the owner of the uploads it opens. */
  subjectOf(principal: P): string;
  /** The credential the principal authenticated with (which key, session, device key), carried in its tokens. */
  credentialOf(principal: P): string;
  /** The principal behind a credential taken from a token, read again now; null once it is revoked or changed. */
  principalOf(credential: string): Promise<P | null>;
  /** Where `repository` is stored; undefined when nothing owns that name (then it holds nothing). */
  locate(repository: string): Promise<RepositoryLocation | undefined>;
}

export function parseBasic(header: string | undefined): { username: string; password: string } | undefined {
  const m = /^Basic\s+(\S+)$/i.exec(header ?? '');
  if (!m?.[1]) return undefined;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

export interface Challenge {
  realm: string;
  service: string;
}

/**
 * Checks that the request may do `action` on `repository` (or just that it is authenticated when repository is
 * undefined, for `GET /v2/`) and returns who it is. Accepts our bearer tokens and, for simple clients, Basic
 * credentials directly.
 *
 * INVARIANT: a token is only a hint of what was granted. Each use re-reads the credential it was minted from and
 * asks `authorize` again, so a deleted key, an ended session, a changed device key or a removed membership ends
 * access at once, not when the token expires.
 */
export async function requireAccess<P>(
  request: FastifyRequest,
  access: RegistryAccess<P>,
  signer: TokenSigner,
  challenge: Challenge,
  repository: string | undefined,
  action: RegistryAction,
): Promise<P> {
  const header = request.headers.authorization;
  const scope =
    repository === undefined ? undefined : `repository:${repository}:${action === 'push' ? 'pull,push' : 'pull'}`;
  const wwwAuthenticate = `Bearer realm="${challenge.realm}",service="${challenge.service}"${scope ? `,scope="${scope}"` : ''}`;
  const unauthorized = (message: string, insufficient = false) =>
    new RegistryError('UNAUTHORIZED', message, {
      headers: { 'www-authenticate': insufficient ? `${wwwAuthenticate},error="insufficient_scope"` : wwwAuthenticate },
    });

  const bearer = /^Bearer\s+(\S+)$/i.exec(header ?? '')?.[1];
  if (bearer) {
    const claims = signer.verify(bearer, challenge.service);
    if (!claims) throw unauthorized('the token is invalid, expired or for another service');
    const principal = await access.principalOf(claims.cred);
    if (principal === null) throw unauthorized('the credential this token was issued for is no longer valid');
    if (repository === undefined) return principal;
    if (!hasGrant(claims.access, repository, action))
      throw unauthorized(`the token does not grant ${action} on ${repository}`, true);
    if (!(await access.authorize(principal, repository, action)))
      throw new RegistryError('DENIED', `${action} on ${repository} is not allowed`);
    return principal;
  }
  const basic = parseBasic(header);
  if (!basic) throw unauthorized('authentication required');
  const principal = await access.authenticate(basic.username, basic.password, request.ip);
  if (principal === null) throw unauthorized('invalid username or password');
  if (repository === undefined) return principal;
  if (!(await access.authorize(principal, repository, action)))
    throw new RegistryError('DENIED', `${action} on ${repository} is not allowed`);
  return principal;
}

function hasGrant(grants: AccessGrant[], repository: string, action: RegistryAction): boolean {
  return grants.some((g) => g.type === 'repository' && g.name === repository && g.actions.includes(action));
}
