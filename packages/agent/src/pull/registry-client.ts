import { createHash } from 'node:crypto';
import { FlotillaError } from '@flotilla/protocol';
import { z } from 'zod';
import type { RegistryAuth } from '../engine/container-engine.js';
import { httpExchange } from '../util/http.js';

const IDLE_TIMEOUT_MS = 30_000;
const MAX_DOCUMENT_BYTES = 4 * 1024 * 1024;
/** Renewed this long before the server says it expires, so a download never starts with a token about to lapse. */
const TOKEN_MARGIN_MS = 30_000;

export const MANIFEST_TYPES = {
  docker: 'application/vnd.docker.distribution.manifest.v2+json',
  oci: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
} as const;

/**
 * Layer encodings `docker load` decompresses itself (moby's DecompressStream on 20.10: gzip, or a plain tar);
 * anything else (zstd, foreign layers) is left to the engine's own pull.
 */
const LOADABLE_LAYER_TYPES = new Set([
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.oci.image.layer.v1.tar',
]);

const digestSchema = z.string().regex(/^sha256:[0-9a-f]{64}$/);
const descriptorSchema = z.object({
  mediaType: z.string(),
  digest: digestSchema,
  size: z.number().int().nonnegative(),
});
const manifestSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema).max(1000),
});
export type ImageManifest = z.infer<typeof manifestSchema>;
const configSchema = z.object({ rootfs: z.object({ diff_ids: z.array(digestSchema) }) });

/** `host/repo@sha256:<hex>` split; undefined for a reference without a digest (a tag is not pulled here). */
export function parseDigestRef(ref: string): { host: string; repository: string; digest: string } | undefined {
  const match = /^([^/]+)\/(.+)@(sha256:[0-9a-f]{64})$/.exec(ref);
  if (!match) return undefined;
  const [, host = '', repository = '', digest = ''] = match;
  return /^[a-z0-9]+(?:[._/-][a-z0-9]+)*$/.test(repository) ? { host, repository, digest } : undefined;
}

export function sha256Of(bytes: Buffer | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** The `key="value"` parameters of a `WWW-Authenticate: Bearer …` challenge. */
export function bearerChallenge(header: string | undefined): Record<string, string> | undefined {
  if (!header || !/^bearer\s/i.test(header)) return undefined;
  const params: Record<string, string> = {};
  for (const [, key = '', value = ''] of header.matchAll(/([a-z_]+)="([^"]*)"/gi)) params[key.toLowerCase()] = value;
  return params;
}

/**
 * Reads one repository of Flotilla's registry as the device (Docker token auth: the registry's 401 challenge names
 * the token realm, which is asked with the device's registry credentials for a pull scope). Every document it
 * returns was checked against its digest.
 */
export class RegistryClient {
  private token: { value: string; until: number } | undefined;

  constructor(
    /** `http(s)://host` of the registry. */
    private readonly base: URL,
    private readonly repository: string,
    private readonly auth: RegistryAuth,
    /** Roots to verify an https:// registry with (util/trust.ts); absent: Node's roots. */
    private readonly ca?: string[],
  ) {}

  blobUrl(digest: string): URL {
    return new URL(`/v2/${this.repository}/blobs/${digest}`, this.base);
  }

  /** Headers for a registry request: a bearer token once the registry asked for one. */
  async headers(signal: AbortSignal): Promise<Record<string, string>> {
    if (!this.token || this.token.until < Date.now()) await this.login(signal);
    return this.token ? { authorization: `Bearer ${this.token.value}` } : {};
  }

  private async login(signal: AbortSignal): Promise<void> {
    this.token = undefined;
    const probe = await this.get(new URL('/v2/', this.base), {}, signal);
    if (probe.status === 200) return;
    const challenge = bearerChallenge(probe.headers['www-authenticate'] as string | undefined);
    if (probe.status !== 401 || !challenge?.realm)
      throw new FlotillaError('UNEXPECTED_RESPONSE', `the registry answered HTTP ${probe.status} without a challenge`);
    const realm = new URL(challenge.realm);
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:')
      throw new FlotillaError('UNEXPECTED_RESPONSE', 'the registry names a token realm that is not HTTP(S)');
    if (challenge.service) realm.searchParams.set('service', challenge.service);
    realm.searchParams.set('scope', `repository:${this.repository}:pull`);
    const basic = Buffer.from(`${this.auth.username}:${this.auth.password}`).toString('base64');
    const answer = await this.get(realm, { authorization: `Basic ${basic}` }, signal);
    if (answer.status !== 200)
      throw new FlotillaError('UNEXPECTED_RESPONSE', `the registry's token service answered HTTP ${answer.status}`);
    const body = z
      .object({ token: z.string().min(1), expires_in: z.number().positive().optional() })
      .parse(JSON.parse(answer.body.toString('utf8')));
    const ttlMs = (body.expires_in ?? 60) * 1000;
    this.token = { value: body.token, until: Date.now() + Math.max(ttlMs - TOKEN_MARGIN_MS, ttlMs / 2) };
  }

  private async get(url: URL, headers: Record<string, string>, signal: AbortSignal) {
    try {
      return await httpExchange(url, {
        method: 'GET',
        headers,
        signal,
        idleTimeoutMs: IDLE_TIMEOUT_MS,
        maxBodyBytes: MAX_DOCUMENT_BYTES,
        ca: this.ca,
      });
    } catch (error) {
      if (signal.aborted) throw error;
      throw new FlotillaError('NETWORK_ERROR', `registry ${url.host}: ${(error as Error).message}`);
    }
  }

  /** A small document (manifest, config) whose sha256 must be `digest`. */
  private async document(url: URL, digest: string, accept: string | undefined, signal: AbortSignal): Promise<Buffer> {
    const answer = await this.get(url, { ...(await this.headers(signal)), ...(accept ? { accept } : {}) }, signal);
    if (answer.status !== 200)
      throw new FlotillaError('UNEXPECTED_RESPONSE', `the registry answered HTTP ${answer.status} for ${digest}`);
    const actual = sha256Of(answer.body);
    if (actual !== digest) throw new FlotillaError('IMAGE_INVALID', `the registry sent ${actual} for ${digest}`);
    return answer.body;
  }

  /**
   * The image manifest `digest` names and its config. A manifest list or index, or a layer `docker load` cannot
   * take, is UNSUPPORTED_MEDIA_TYPE: the engine's own pull handles those.
   */
  async image(
    digest: string,
    signal: AbortSignal,
  ): Promise<{ manifest: ImageManifest; config: Buffer; diffIds: string[] }> {
    const accept = Object.values(MANIFEST_TYPES).join(', ');
    const raw = await this.document(
      new URL(`/v2/${this.repository}/manifests/${digest}`, this.base),
      digest,
      accept,
      signal,
    );
    const parsed: unknown = JSON.parse(raw.toString('utf8'));
    const mediaType = (parsed as { mediaType?: unknown }).mediaType;
    if (mediaType === MANIFEST_TYPES.dockerList || mediaType === MANIFEST_TYPES.ociIndex)
      throw new FlotillaError('UNSUPPORTED_MEDIA_TYPE', 'the image is a multi-platform index');
    const manifest = manifestSchema.parse(parsed);
    const odd = manifest.layers.find((l) => !LOADABLE_LAYER_TYPES.has(l.mediaType));
    if (odd) throw new FlotillaError('UNSUPPORTED_MEDIA_TYPE', `a layer is ${odd.mediaType}`);
    if (manifest.config.size > MAX_DOCUMENT_BYTES)
      throw new FlotillaError('UNSUPPORTED_MEDIA_TYPE', 'the image config is larger than the agent reads');
    const config = await this.document(this.blobUrl(manifest.config.digest), manifest.config.digest, undefined, signal);
    const diffIds = configSchema.parse(JSON.parse(config.toString('utf8'))).rootfs.diff_ids;
    if (diffIds.length !== manifest.layers.length)
      throw new FlotillaError('IMAGE_INVALID', 'the image config and its manifest name different numbers of layers');
    return { manifest, config, diffIds };
  }
}
