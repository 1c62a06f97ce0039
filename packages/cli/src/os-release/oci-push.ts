import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { FlotillaError, OS_RELEASE_CONFIG_MEDIA_TYPE, OS_SLOT_IMAGE_MEDIA_TYPE } from '@flotilla/protocol';
import { Agent, fetch as undiciFetch, type RequestInit, type Response } from 'undici';
import { trustedCas } from '../credentials/trust.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

export interface OsPush {
  /** The server's URL (the registry is at `<url>/v2/`). */
  baseUrl: string;
  /** The user's API key or session token: the registry takes it as a Basic password. */
  token: string;
  ca?: string | undefined;
  repository: string;
  deviceType: string;
  version: string;
  image: { path: string; sha256: string; size: number };
  progress?: (line: string) => void;
}

/**
 * Pushes an OS release as an OCI image over the distribution API (no container engine needed): the slot image as
 * its one layer (OS_SLOT_IMAGE_MEDIA_TYPE, uncompressed, so its digest is the digest of what the device writes), a
 * config blob naming the device type and version, and the manifest, by digest. Blobs the repository has are not
 * sent again. Returns the manifest's digest.
 */
export async function pushOsImage(p: OsPush): Promise<string> {
  const cas = trustedCas(p.ca);
  const dispatcher = cas ? new Agent({ connect: { ca: cas } }) : undefined;
  const auth = `Basic ${Buffer.from(`flotilla:${p.token}`).toString('base64')}`;
  const base = new URL('/v2/', p.baseUrl);
  const call = (url: URL, init: RequestInit): Promise<Response> =>
    undiciFetch(url, {
      ...init,
      headers: { authorization: auth, ...(init.headers as Record<string, string> | undefined) },
      ...(dispatcher ? { dispatcher } : {}),
    });
  const fail = async (what: string, answer: Response): Promise<never> => {
    const text = await answer.text().catch(() => '');
    let message = text.slice(0, 300);
    try {
      const body = JSON.parse(text) as { errors?: { code?: string; message?: string }[] };
      const first = body.errors?.[0];
      if (first) message = `${first.message ?? ''} (${first.code ?? ''})`;
    } catch {}
    const code =
      answer.status === 401 ? 'UNAUTHENTICATED' : answer.status === 403 ? 'FORBIDDEN' : 'UNEXPECTED_RESPONSE';
    throw new FlotillaError(code, `registry: ${what} answered ${answer.status}: ${message}`);
  };
  const pushBlob = async (hex: string, size: number, body: () => Readable | Buffer, label: string) => {
    const blobUrl = new URL(`${p.repository}/blobs/sha256:${hex}`, base);
    const head = await call(blobUrl, { method: 'HEAD' });
    if (head.ok) {
      p.progress?.(`${label}: already in the registry`);
      return;
    }
    const started = await call(new URL(`${p.repository}/blobs/uploads/`, base), { method: 'POST' });
    if (started.status !== 202) await fail(`starting the ${label} upload`, started);
    const location = started.headers.get('location');
    if (!location) throw new FlotillaError('UNEXPECTED_RESPONSE', 'registry: the upload has no Location');
    const put = new URL(location, base);
    put.searchParams.set('digest', `sha256:${hex}`);
    const data = body();
    const sent = await call(put, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
      body: Buffer.isBuffer(data) ? data : Readable.from(data),
      duplex: 'half',
    });
    if (sent.status !== 201) await fail(`uploading the ${label}`, sent);
    p.progress?.(`${label}: ${size} bytes uploaded`);
  };

  await pushBlob(p.image.sha256, p.image.size, () => createReadStream(p.image.path), 'slot image');
  const config = Buffer.from(JSON.stringify({ deviceType: p.deviceType, version: p.version }));
  const configHex = sha256(config);
  await pushBlob(configHex, config.length, () => config, 'config');
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OS_RELEASE_CONFIG_MEDIA_TYPE, digest: `sha256:${configHex}`, size: config.length },
      layers: [
        {
          mediaType: OS_SLOT_IMAGE_MEDIA_TYPE,
          digest: `sha256:${p.image.sha256}`,
          size: p.image.size,
          annotations: { 'org.opencontainers.image.title': `${p.deviceType}-${p.version}.ext4` },
        },
      ],
      annotations: { 'org.opencontainers.image.version': p.version },
    }),
  );
  const digest = `sha256:${sha256(manifest)}`;
  const put = await call(new URL(`${p.repository}/manifests/${digest}`, base), {
    method: 'PUT',
    headers: { 'content-type': OCI_MANIFEST },
    body: manifest,
  });
  if (put.status !== 201) await fail('storing the manifest', put);
  return digest;
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}
