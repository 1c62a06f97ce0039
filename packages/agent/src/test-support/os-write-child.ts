// A device agent that starts a host OS update and writes the slot slowly, for a test to kill -9 mid-write.
// argv[2]: JSON { config, stateFile, target, chunkDelayMs }. Prints `progress <percent>` lines.
import { createReadStream } from 'node:fs';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import type { HostOsConfig } from '../hostos/host-os-config.js';
import { HostOsUpdater } from '../hostos/host-os-updater.js';
import { bootloaderFor } from '../hostos/select-bootloader.js';
import type { OsTarget } from '../hostos/update-machine.js';

const args = JSON.parse(process.argv[2] ?? '{}') as {
  config: HostOsConfig;
  stateFile: string;
  target: OsTarget;
  chunkDelayMs: number;
};

async function* slowly(url: string, from: number): AsyncGenerator<Buffer> {
  for await (const chunk of createReadStream(fileURLToPath(url), { highWaterMark: 64 << 10, start: from })) {
    await sleep(args.chunkDelayMs);
    yield chunk as Buffer;
  }
}

const updater = await HostOsUpdater.open({
  config: args.config,
  bootloader: bootloaderFor(args.config),
  booted: 'a',
  stateFile: args.stateFile,
  checkpointFile: join(dirname(args.stateFile), 'host-os-write.json'),
  openImage: async (url, _signal, from = 0) => ({ stream: Readable.from(slowly(url, from)), start: from }),
  healthChecks: [],
  reboot: async () => undefined,
  log: pino({ level: 'silent' }),
  onProgress: (percent) => process.stdout.write(`progress ${percent}\n`),
});
await updater.start(args.target);
process.stdout.write('done\n');
