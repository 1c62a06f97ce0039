import type { FastifyInstance } from 'fastify';
import { parseBasic } from './access.js';
import type { RegistryAccess, RegistryAction } from './access.js';
import { RegistryError } from './errors.js';
import { isRepositoryName } from './names.js';
import type { AccessGrant, TokenSigner } from './token.js';
import { parseScope } from './token.js';

/**
 * Five minutes, as Docker Hub. Revocation no longer waits for expiry (every use re-checks the credential), so this
 * only bounds how long a leaked token is worth anything; clients fetch a new one when it runs out.
 */
export const TOKEN_TTL_SECONDS = 300;

/**
 * `GET /auth/v1/token?service=&scope=repository:<repo>:pull,push` with Basic auth (Docker token-auth spec).
 * Bad credentials are 401 (so `docker login` fails); a scope the principal may not have is left out of the token
 * rather than refused, as the spec says, and the registry then refuses the operation itself.
 */
export function registerTokenRoute<P>(
  app: FastifyInstance,
  access: RegistryAccess<P>,
  signer: TokenSigner,
  service: () => string,
): void {
  app.get('/auth/v1/token', async (request, reply) => {
    const query = request.query as Record<string, string | string[] | undefined>;
    // INVARIANT: tokens are minted only for this registry (their audience), and the registry accepts no other.
    if (query.service !== undefined && query.service !== service())
      throw new RegistryError('DENIED', `this server issues tokens for service "${service()}" only`);
    const basic = parseBasic(request.headers.authorization);
    if (!basic) {
      throw new RegistryError('UNAUTHORIZED', 'basic credentials are required', {
        headers: { 'www-authenticate': 'Basic realm="flotilla"' },
      });
    }
    const principal = await access.authenticate(basic.username, basic.password, request.ip);
    if (principal === null) {
      throw new RegistryError('UNAUTHORIZED', 'invalid username or password', {
        headers: { 'www-authenticate': 'Basic realm="flotilla"' },
      });
    }
    const scopes = query.scope === undefined ? [] : Array.isArray(query.scope) ? query.scope : [query.scope];
    const grants: AccessGrant[] = [];
    // A client may send several scopes in one parameter separated by spaces.
    for (const scope of scopes.flatMap((s) => s.split(' ')).filter((s) => s !== '')) {
      const parsed = parseScope(scope);
      if (!parsed || !isRepositoryName(parsed.name)) continue;
      const allowed: RegistryAction[] = [];
      for (const action of new Set(parsed.actions.flatMap((a) => (a === '*' ? ['pull', 'push'] : [a])))) {
        if ((action === 'pull' || action === 'push') && (await access.authorize(principal, parsed.name, action)))
          allowed.push(action);
      }
      const existing = grants.find((g) => g.name === parsed.name);
      if (existing) existing.actions = [...new Set([...existing.actions, ...allowed])];
      else grants.push({ type: 'repository', name: parsed.name, actions: allowed });
    }
    const issuedAt = new Date();
    const token = signer.sign(
      { subject: access.subjectOf(principal), credential: access.credentialOf(principal) },
      service(),
      grants,
      TOKEN_TTL_SECONDS,
      Math.floor(issuedAt.getTime() / 1000),
    );
    return reply
      .header('cache-control', 'no-store')
      .send({ token, access_token: token, expires_in: TOKEN_TTL_SECONDS, issued_at: issuedAt.toISOString() });
  });
}
