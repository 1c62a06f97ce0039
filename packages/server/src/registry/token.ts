import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** One grant in a token, as in the Docker token-auth spec. */
export interface AccessGrant {
  type: 'repository';
  name: string;
  actions: Array<'pull' | 'push'>;
}

export interface TokenClaims {
  iss: string;
  sub: string;
  aud: string;
  iat: number;
  nbf: number;
  exp: number;
  jti: string;
  access: AccessGrant[];
  /**
   * The credential the token was minted from (RegistryAccess.credentialOf). INVARIANT: every use of the token
   * re-reads this credential, so deleting a key, ending a session or changing a device key ends the token too.
   */
  cred: string;
}

const ISSUER = 'flotilla';

/**
 * Compact JWS (HS256) tokens. The secret lives in the registry's data folder so tokens survive a restart;
 * several control-plane nodes sharing that folder share the secret too.
 */
export class TokenSigner {
  private constructor(private readonly secret: Buffer) {}

  /** Loads `<dir>/token-secret`, creating it (0600, written atomically) on first use. */
  static async open(dir: string): Promise<TokenSigner> {
    const file = join(dir, 'token-secret');
    try {
      const existing = await readFile(file);
      if (existing.length >= 32) return new TokenSigner(existing);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    await mkdir(dirname(file), { recursive: true });
    const secret = randomBytes(48);
    const temp = `${file}.${process.pid}.tmp`;
    await writeFile(temp, secret, { mode: 0o600 });
    await chmod(temp, 0o600);
    await rename(temp, file);
    // Another process may have won the race: whatever is on disk now is the secret.
    return new TokenSigner(await readFile(file));
  }

  sign(
    identity: { subject: string; credential: string },
    audience: string,
    access: AccessGrant[],
    ttlSeconds: number,
    now = Math.floor(Date.now() / 1000),
  ): string {
    const claims: TokenClaims = {
      iss: ISSUER,
      sub: identity.subject,
      aud: audience,
      iat: now,
      nbf: now - 5,
      exp: now + ttlSeconds,
      jti: randomBytes(12).toString('base64url'),
      access,
      cred: identity.credential,
    };
    const head = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');
    const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
    return `${head}.${body}.${this.mac(`${head}.${body}`)}`;
  }

  /**
   * The claims of a valid, unexpired token signed by us for `audience` (the service, i.e. this registry's host);
   * undefined otherwise. A token minted for another service sharing the secret is refused.
   */
  verify(token: string, audience: string, now = Math.floor(Date.now() / 1000)): TokenClaims | undefined {
    const parts = token.split('.');
    if (parts.length !== 3) return undefined;
    const [head, body, sig] = parts as [string, string, string];
    const expected = Buffer.from(this.mac(`${head}.${body}`));
    const given = Buffer.from(sig);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return undefined;
    try {
      const header = JSON.parse(Buffer.from(head, 'base64url').toString('utf8')) as { alg?: unknown };
      if (header.alg !== 'HS256') return undefined;
      const claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as TokenClaims;
      if (claims.iss !== ISSUER || typeof claims.exp !== 'number' || claims.exp < now || claims.nbf > now)
        return undefined;
      if (claims.aud !== audience || typeof claims.sub !== 'string' || typeof claims.cred !== 'string')
        return undefined;
      if (!Array.isArray(claims.access)) return undefined;
      return claims;
    } catch {
      return undefined;
    }
  }

  private mac(input: string): string {
    return createHmac('sha256', this.secret).update(input).digest('base64url');
  }

  /** A MAC of `input` under a key derived for `purpose`, so it can never be mistaken for a token signature. */
  tag(purpose: string, input: string): Buffer {
    return createHmac('sha256', this.secret).update(`${purpose}\0${input}`).digest();
  }
}

/** `repository:<name>:pull,push` → a grant request; undefined for other resource types or malformed scopes. */
export function parseScope(scope: string): { name: string; actions: string[] } | undefined {
  const m = /^repository:([^:]+(?::\d+\/[^:]+)?):([a-z*,]+)$/.exec(scope);
  if (!m?.[1] || !m[2]) return undefined;
  return { name: m[1], actions: m[2].split(',').filter((a) => a !== '') };
}
