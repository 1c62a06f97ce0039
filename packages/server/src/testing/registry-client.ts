import { createHash } from 'node:crypto';

export const sha256Digest = (bytes: Buffer | string): string =>
  `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

export interface PushedImage {
  repository: string;
  tag: string;
  manifestDigest: string;
  configDigest: string;
  layerDigest: string;
}

/**
 * Pushes a tiny OCI image (one config, one layer, one manifest) to `repository` as a registry client does, with
 * `authorization` (Basic or Bearer) on each request. `seed` makes the blobs unique to the caller.
 */
export async function pushTinyImage(
  baseUrl: string,
  authorization: string,
  repository: string,
  seed: string,
  tag = 'latest',
): Promise<PushedImage> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', seed }));
  const layer = Buffer.from(`layer of ${seed}`);
  for (const blob of [config, layer]) {
    const res = await fetch(`${baseUrl}/v2/${repository}/blobs/uploads/?digest=${sha256Digest(blob)}`, {
      method: 'POST',
      headers: { authorization, 'content-type': 'application/octet-stream' },
      body: blob,
    });
    if (res.status !== 201) throw new Error(`blob upload to ${repository}: ${res.status} ${await res.text()}`);
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: sha256Digest(config),
        size: config.length,
      },
      layers: [
        { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256Digest(layer), size: layer.length },
      ],
    }),
  );
  const res = await fetch(`${baseUrl}/v2/${repository}/manifests/${tag}`, {
    method: 'PUT',
    headers: { authorization, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    body: manifest,
  });
  if (res.status !== 201) throw new Error(`manifest push to ${repository}: ${res.status} ${await res.text()}`);
  return {
    repository,
    tag,
    manifestDigest: sha256Digest(manifest),
    configDigest: sha256Digest(config),
    layerDigest: sha256Digest(layer),
  };
}
