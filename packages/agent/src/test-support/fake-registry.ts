import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { run, tempDir } from '@flotilla/testkit';

/**
 * An image served by the fake control plane's registry: built locally, exported with `docker save`, turned into a
 * schema-2 manifest with gzip layers, then removed from the engine so the agent has to really pull it.
 */
export interface ServedImage {
  repo: string;
  manifest: Buffer;
  manifestDigest: string;
  blobs: Map<string, Buffer>;
}

const sha = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

export async function exportImage(localRef: string, repo: string): Promise<ServedImage> {
  const dir = await tempDir('flotilla-agent-save-');
  try {
    const tarball = join(dir.path, 'image.tar');
    await run('docker', ['save', '-o', tarball, localRef]);
    await run('tar', ['-C', dir.path, '-xf', tarball]);
    const [entry] = JSON.parse(await readFile(join(dir.path, 'manifest.json'), 'utf8')) as Array<{
      Config: string;
      Layers: string[];
    }>;
    if (!entry) throw new Error(`docker save of ${localRef} has no manifest`);
    const blobs = new Map<string, Buffer>();
    const config = await readFile(join(dir.path, entry.Config));
    blobs.set(sha(config), config);
    const layers = [];
    for (const layerPath of entry.Layers) {
      const gz = gzipSync(await readFile(join(dir.path, layerPath)));
      blobs.set(sha(gz), gz);
      layers.push({ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: gz.length, digest: sha(gz) });
    }
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
        config: {
          mediaType: 'application/vnd.docker.container.image.v1+json',
          size: config.length,
          digest: sha(config),
        },
        layers,
      }),
    );
    return { repo, manifest, manifestDigest: sha(manifest), blobs };
  } finally {
    await dir.remove();
  }
}
