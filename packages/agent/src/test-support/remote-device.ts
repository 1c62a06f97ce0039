import { createInterface } from 'node:readline';
import { streamOpenMessageSchema } from '@flotilla/protocol';
import pino from 'pino';
import { DockerEngine } from '../engine/docker-engine.js';
import type { RemoteAccess as RemoteAccessClass } from '../remote/remote-access.js';

/**
 * The device's half of remote access alone in a process, for tests and benches that need it apart: its own trust
 * store (NODE_EXTRA_CA_CERTS for a test relay's TLS certificate) or its own memory figures. Env FLOTILLA_RELAY is
 * `{apiEndpoint, uuid, deviceApiKey}`; FLOTILLA_REMOTE_MODULE, when set, is the module to take RemoteAccess from
 * (bench/remote-tunnel.mjs: the agent's bundle), else the compiled remote/remote-access.js. Reads stream-open
 * messages as JSON lines on stdin, says `ready` on stdout once listening, and stops every stream when stdin ends.
 */
const modulePath = process.env.FLOTILLA_REMOTE_MODULE ?? new URL('../remote/remote-access.js', import.meta.url).href;
const { RemoteAccess } = (await import(modulePath)) as { RemoteAccess: typeof RemoteAccessClass };
const remote = new RemoteAccess({
  ...JSON.parse(process.env.FLOTILLA_RELAY ?? '{}'),
  engine: new DockerEngine(),
  namespace: '',
  appId: () => undefined,
  hostShell: '/bin/sh',
  log: pino({ level: 'warn' }, pino.destination(2)),
});
createInterface({ input: process.stdin }).on('line', (line) => {
  remote.open(streamOpenMessageSchema.parse(JSON.parse(line)));
});
process.stdin.on('end', () => void remote.stop().then(() => process.exit(0)));
process.stdout.write('ready\n');
