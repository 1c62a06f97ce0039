import type { FastifyRequest } from 'fastify';
import { RegistryError } from './errors.js';
import type { AccessGrant, TokenSigner } from './token.js';

export type RegistryAction = 'pull' | 'push';

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
  /** Stable subject for tokens (logs only). */
  subjectOf(principal: P): string;
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
 * undefined, for `GET /v2/`). Accepts our bearer tokens and, for simple clients, Basic credentials directly.
 */
export async function requireAccess<P>(
  request: FastifyRequest,
  access: RegistryAccess<P>,
  signer: TokenSigner,
  challenge: Challenge,
  repository: string | undefined,
  action: RegistryAction,
): Promise<void> {
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
    const claims = signer.verify(bearer);
    if (!claims) throw unauthorized('the token is invalid or expired');
    if (repository === undefined) return;
    if (hasGrant(claims.access, repository, action)) return;
    throw unauthorized(`the token does not grant ${action} on ${repository}`, true);
  }
  const basic = parseBasic(header);
  if (!basic) throw unauthorized('authentication required');
  const principal = await access.authenticate(basic.username, basic.password, request.ip);
  if (principal === null) throw unauthorized('invalid username or password');
  if (repository === undefined) return;
  if (!(await access.authorize(principal, repository, action)))
    throw new RegistryError('DENIED', `${action} on ${repository} is not allowed`);
}

function hasGrant(grants: AccessGrant[], repository: string, action: RegistryAction): boolean {
  return grants.some((g) => g.type === 'repository' && g.name === repository && g.actions.includes(action));
}
