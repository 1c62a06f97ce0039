import { OS_RELEASE_CONFIG_MEDIA_TYPE, OS_SLOT_IMAGE_MEDIA_TYPE } from '@flotilla/protocol';
import { sha256Digest } from './registry-client.js';

/**
 * Pushes an OS release image (slot image layer, config, manifest by digest) to the registry as the CLI does; returns
 * the status of the first refused request (else the manifest's 201) and the manifest's digest.
 */
export async function pushOsImage(
  url: string,
  auth: string,
  repository: string,
  slot: Buffer,
  config: { deviceType: string; version: string },
): Promise<{ status: number; digest: string }> {
  const configBytes = Buffer.from(JSON.stringify(config));
  for (const blob of [slot, configBytes]) {
    const res = await fetch(`${url}/v2/${repository}/blobs/uploads/?digest=${sha256Digest(blob)}`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/octet-stream' },
      body: blob,
    });
    if (res.status !== 201) return { status: res.status, digest: '' };
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: OS_RELEASE_CONFIG_MEDIA_TYPE, digest: sha256Digest(configBytes), size: configBytes.length },
      layers: [{ mediaType: OS_SLOT_IMAGE_MEDIA_TYPE, digest: sha256Digest(slot), size: slot.length }],
    }),
  );
  const digest = sha256Digest(manifest);
  const res = await fetch(`${url}/v2/${repository}/manifests/${digest}`, {
    method: 'PUT',
    headers: { authorization: auth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    body: manifest,
  });
  return { status: res.status, digest };
}
