// The device agent (startAgent: all of agent.ts) on an A/B host, in a process of its own so a test can kill -9 it.
// argv[2]: JSON { configPath, dataDir, namespace, cmdline, osReleaseFile }. Prints `started` once running and
// `reboot` each time it asks the host to reboot (a dry run: the test "powers on" the next boot itself).
// Logs go to stderr (level FLOTILLA_TEST_LOG, default warn), so stdout carries only those lines.
import pino from 'pino';
import { startAgent } from '../agent.js';

const args = JSON.parse(process.argv[2] ?? '{}') as {
  configPath: string;
  dataDir: string;
  namespace: string;
  cmdline: string;
  osReleaseFile: string;
};

await startAgent({
  configPath: args.configPath,
  dataDir: args.dataDir,
  namespace: args.namespace,
  pollIntervalMs: 300,
  reportIntervalMs: 100,
  apiPort: 0,
  hostOsCmdline: args.cmdline,
  osReleaseFile: args.osReleaseFile,
  hostPower: {
    mode: 'dry-run',
    reboot: async () => void process.stdout.write('reboot\n'),
    shutdown: async () => undefined,
    identify: async () => undefined,
  },
  logger: pino({ level: process.env.FLOTILLA_TEST_LOG ?? 'warn' }, pino.destination(2)),
});
process.stdout.write('started\n');
