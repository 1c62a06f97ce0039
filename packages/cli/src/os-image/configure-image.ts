import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONNECTIONS_DIR, WIFI_CONNECTION, redactConfig, redactKeyfile, wifiKeyfile } from './boot-files.js';
import { DiskImage } from './disk-image.js';
import type { BootPartition } from './disk-image.js';
import { onWritableImage } from './writable-image.js';
import { compressionOf, extractImage } from './image-source.js';

export interface ConfigureRequest {
  image: string;
  /** Write the configured image here instead of in place (required for nothing; the default for compressed images). */
  output?: string;
  config: Record<string, unknown>;
  wifi?: { ssid: string; key?: string };
}

export interface ConfigureResult {
  /** The image that was configured (the input, or the new uncompressed copy). */
  image: string;
  extractedFrom?: string;
  partition: PartitionSummary;
  files: string[];
}

export interface PartitionSummary {
  index: number;
  scheme: 'mbr' | 'gpt';
  offset: number;
  label: string;
  fat: number;
}

function summary(image: DiskImage, boot: BootPartition): PartitionSummary {
  return {
    index: boot.partition.index,
    scheme: image.table.scheme,
    offset: boot.partition.offset,
    label: boot.label,
    fat: boot.fs.layout.type,
  };
}

/**
 * Writes config.json (and the WiFi connection) into the image's boot partition. A compressed download, or a raw image
 * with `output`, is first written out as a new uncompressed image, which is what gets configured.
 */
export function configureImage(request: ConfigureRequest): Promise<ConfigureResult> {
  return onWritableImage(request, async (target, extractedFrom) => {
    const image = DiskImage.open(target, true);
    try {
      const boot = image.bootPartition();
      const files = ['config.json'];
      boot.fs.writeFile('config.json', Buffer.from(`${JSON.stringify(request.config, null, 2)}\n`));
      if (request.wifi) {
        boot.fs.writeFile(WIFI_CONNECTION, Buffer.from(wifiKeyfile(request.wifi)));
        files.push(WIFI_CONNECTION);
      }
      return { image: target, ...(extractedFrom ? { extractedFrom } : {}), partition: summary(image, boot), files };
    } finally {
      image.close();
    }
  });
}

export interface ImageConfig {
  image: string;
  partition: PartitionSummary;
  /** config.json as parsed (secrets redacted unless asked), or its raw text when it is not JSON; absent when none. */
  config?: unknown;
  connections: { file: string; text: string }[];
}

/** What the image's boot partition holds: config.json and the NetworkManager connections. Compressed images are read
 *  through a temporary uncompressed copy, removed after. */
export async function readImageConfig(path: string, showSecrets: boolean): Promise<ImageConfig> {
  const compression = await compressionOf(path);
  let scratch: string | undefined;
  let target = path;
  if (compression !== 'none') {
    scratch = await mkdtemp(join(tmpdir(), 'flotilla-image-'));
    target = join(scratch, 'image.img');
    await extractImage(path, compression, target);
  }
  try {
    const image = DiskImage.open(target, false);
    try {
      const boot = image.bootPartition();
      const raw = boot.fs.readFile('config.json')?.toString('utf8');
      let config: unknown;
      if (raw !== undefined) {
        try {
          config = JSON.parse(raw);
          if (!showSecrets) config = redactConfig(config);
        } catch {
          config = showSecrets ? raw : '<config.json is not valid JSON>';
        }
      }
      const connections = boot.fs
        .list(CONNECTIONS_DIR)
        .filter((entry) => !entry.directory)
        .map((entry) => {
          const text = boot.fs.readFile(`${CONNECTIONS_DIR}/${entry.name}`)?.toString('utf8') ?? '';
          return { file: `${CONNECTIONS_DIR}/${entry.name}`, text: showSecrets ? text : redactKeyfile(text) };
        });
      return {
        image: path,
        partition: summary(image, boot),
        ...(config === undefined ? {} : { config }),
        connections,
      };
    } finally {
      image.close();
    }
  } finally {
    if (scratch) await rm(scratch, { recursive: true, force: true });
  }
}
