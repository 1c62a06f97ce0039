import { readFile } from 'node:fs/promises';
import { Command } from 'commander';
import { FlotillaError, targetDeviceSchema } from '@flotilla/protocol';
import type { TargetDevice } from '@flotilla/protocol';
import { startAgent } from './agent.js';

/** `flotilla-agent --config <config.json> [--data <dir>] [--docker-socket <path>]`. Errors print `message (CODE)`. */
const program = new Command()
  .name('flotilla-agent')
  .description(
    'Flotilla device agent: provisions from config.json and keeps the container engine converged to target state.',
  )
  .requiredOption('--config <path>', 'device config.json')
  .option('--data <dir>', 'state directory (SQLite database, update locks)', '/var/lib/flotilla-agent')
  .option('--docker-socket <path>', 'container engine socket', '/var/run/docker.sock')
  .option('--log-level <level>', 'trace|debug|info|warn|error', process.env.FLOTILLA_LOG_LEVEL ?? 'info')
  .option('--target-file <path>', 'unmanaged devices: a local target state (one device: {name, config, apps}) to apply')
  .option('--preload-dir <dir>', 'where a preloaded release is looked for at start (default: <data>/preload)')
  .option('--poll-interval <ms>', 'fixed poll interval in ms (default: target config, config.json or 900000 + jitter)')
  .option('--namespace <prefix>', 'prefix for engine object names, to run several agents on one engine (tests)', '')
  .option(
    '--host-config <mode>',
    'real: write /etc/hostname, reboot/blink for real; dry-run (default): change nothing on this host',
  )
  .option('--api-port <port>', 'local device API port (default: config.json listenPort or 48484; 0 disables it)')
  .option('--api-address <address>', 'local device API bind address', '0.0.0.0')
  .option(
    '--host-shell <command>',
    'remote shells on the host run this (split at spaces; default: $SHELL or /bin/sh), e.g. "nsenter -t 1 -m -u -i -n -p -- sh" in a container',
  )
  .option('--max-remote-streams <n>', 'remote shells and tunnelled connections open at once (default 256)')
  .option(
    '--layer-cache-mib <mib>',
    'image layers kept for the next delta (its base read without `docker save`); 0 keeps none (default 512)',
  );

/** A whole-number flag in [min, max], or VALIDATION_FAILED naming the flag. */
function intFlag(flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < min || n > max)
    throw new FlotillaError(
      'VALIDATION_FAILED',
      `${flag} must be a whole number from ${min} to ${max}, not "${value}"`,
    );
  return n;
}

async function main(): Promise<void> {
  program.parse();
  const o = program.opts<{
    config: string;
    data: string;
    dockerSocket: string;
    logLevel: string;
    targetFile?: string;
    preloadDir?: string;
    pollInterval?: string;
    namespace: string;
    hostConfig?: string;
    apiPort?: string;
    apiAddress: string;
    hostShell?: string;
    maxRemoteStreams?: string;
    layerCacheMib?: string;
  }>();
  if (o.hostConfig !== undefined && o.hostConfig !== 'real' && o.hostConfig !== 'dry-run')
    throw new FlotillaError('VALIDATION_FAILED', `--host-config must be real or dry-run, not "${o.hostConfig}"`);
  let localTarget: TargetDevice | undefined;
  if (o.targetFile) {
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(o.targetFile, 'utf8'));
    } catch (error) {
      throw new FlotillaError(
        'VALIDATION_FAILED',
        `cannot read target file ${o.targetFile}: ${(error as Error).message}`,
      );
    }
    const parsed = targetDeviceSchema.safeParse(raw);
    if (!parsed.success)
      throw new FlotillaError(
        'VALIDATION_FAILED',
        `target file ${o.targetFile}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      );
    localTarget = parsed.data;
  }
  // WARNING: handlers first. A stop asked for while the agent starts (provisioning can take a while) must not meet
  // the default action, which kills the process at once; it is carried out as soon as the agent is up.
  let stopping = false;
  let stop: (() => void) | undefined;
  const shutdown = (): void => {
    if (stopping) return;
    stopping = true;
    stop?.();
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  const agent = await startAgent({
    configPath: o.config,
    dataDir: o.data,
    dockerSocket: o.dockerSocket,
    logLevel: o.logLevel,
    namespace: o.namespace,
    ...(o.pollInterval ? { pollIntervalMs: intFlag('--poll-interval', o.pollInterval, 100, 7 * 86_400_000) } : {}),
    ...(o.hostConfig === 'real' || o.hostConfig === 'dry-run' ? { hostConfig: o.hostConfig } : {}),
    ...(localTarget ? { localTarget } : {}),
    ...(o.preloadDir !== undefined ? { preloadDir: o.preloadDir } : {}),
    ...(o.apiPort !== undefined ? { apiPort: intFlag('--api-port', o.apiPort, 0, 65_535) } : {}),
    apiAddress: o.apiAddress,
    ...(o.hostShell !== undefined ? { hostShell: o.hostShell } : {}),
    ...(o.maxRemoteStreams !== undefined
      ? { maxRemoteStreams: intFlag('--max-remote-streams', o.maxRemoteStreams, 1, 100_000) }
      : {}),
    ...(o.layerCacheMib !== undefined
      ? { layerCacheBytes: intFlag('--layer-cache-mib', o.layerCacheMib, 0, 1_048_576) * 1024 * 1024 }
      : {}),
  });
  stop = () => void agent.stop().then(() => process.exit(0));
  if (stopping) stop();
  process.on('SIGUSR1', () => agent.triggerUpdate());
}

main().catch((error: unknown) => {
  if (error instanceof FlotillaError) {
    process.stderr.write(`flotilla-agent: ${error.message} (${error.code})\n`);
  } else {
    process.stderr.write(`flotilla-agent: ${error instanceof Error ? error.message : String(error)} (INTERNAL)\n`);
  }
  process.exit(1);
});
