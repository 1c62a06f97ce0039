import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir, waitFor } from '@flotilla/testkit';
import { startAgent, type AgentHandle } from '../agent.js';
import { DockerEngine } from '../engine/docker-engine.js';
import {
  buildImage,
  cleanup,
  exec,
  ourContainers,
  quiet,
  serviceOf,
  target,
  uniqueAppId,
  uniqueNamespace,
} from '../test-support/fixtures.js';
import { StreamRelay, type StreamPeer } from '../test-support/stream-relay.js';
import { RemoteAccess } from './remote-access.js';

const MiB = 1024 * 1024;

/**
 * Shells in service containers and tunnels to them, on the real engine: the services are deployed by an agent
 * (unmanaged, local target), so they carry the labels remote access finds them by; the relay's half is played by
 * test-support/stream-relay.
 */
describe('remote access: service shells and tunnels through the engine', () => {
  const namespace = uniqueNamespace();
  const appId = uniqueAppId();
  const img = `flotilla-agent-it/remote-shell:${appId}`;
  let dir: { path: string; remove: () => Promise<void> };
  let agent: AgentHandle;
  let relay: StreamRelay;
  let remote: RemoteAccess;
  const open = async (request: Parameters<StreamRelay['message']>[0]): Promise<StreamPeer> => {
    const message = relay.message(request);
    remote.open(message);
    return relay.peer(message.id);
  };

  before(async () => {
    await buildImage(img, 'remote');
    dir = await tempDir('flotilla-agent-remote-');
    const configPath = join(dir.path, 'config.json');
    await writeFile(configPath, JSON.stringify({}));
    agent = await startAgent({
      configPath,
      dataDir: join(dir.path, 'data'),
      namespace,
      apiPort: 0,
      pollIntervalMs: 500,
      logger: quiet,
      localTarget: target({
        appId,
        appUuid: `app${appId}`,
        commit: 'c1',
        releaseId: 1,
        services: {
          main: { image: img },
          echo: { image: img, composition: { command: ['nc', '-ll', '-p', '7000', '-e', 'cat'] } },
        },
      }),
    });
    await waitFor(
      'both services running',
      async () => (await ourContainers(namespace)).filter((c) => c.State === 'running').length === 2,
      { timeoutMs: 60_000 },
    );
    relay = await StreamRelay.start();
    remote = new RemoteAccess({
      apiEndpoint: relay.apiEndpoint,
      uuid: relay.uuid,
      deviceApiKey: relay.deviceApiKey,
      engine: new DockerEngine(),
      namespace,
      appId: () => appId,
      log: quiet,
    });
  });

  after(async () => {
    await remote?.stop();
    await relay?.close();
    await agent?.stop();
    await cleanup(namespace, [img]);
    await dir?.remove();
  });

  it('a terminal in the container: typed commands run, initial size and resize apply, the exit status ends it', async () => {
    const peer = await open({ kind: 'shell', service: 'main', tty: true, cols: 100, rows: 30 });
    await peer.control('ready');
    peer.stdin('cat /release; stty size\n');
    await peer.output('30 100');
    peer.send({ type: 'resize', cols: 123, rows: 45 });
    peer.stdin('stty size; echo $((6*7)); exit 7\n');
    assert.equal((await peer.control('exit')).code, 7);
    const out = peer.text('stdout');
    assert.match(out, /remote\r\n/, 'the shell runs in the service container (its /release)');
    assert.match(out, /45 123\r\n/);
    assert.match(out, /42\r\n/);
    assert.equal(peer.text('stderr'), '');
    assert.equal(await peer.closed, 1000);
  });

  it('a command without a TTY: stdout and stderr apart, exit status 3', async () => {
    const peer = await open({
      kind: 'shell',
      service: 'main',
      tty: false,
      command: 'echo out; echo err >&2; exit 3',
    });
    assert.equal((await peer.control('exit')).code, 3);
    assert.equal(peer.text('stdout'), 'out\n');
    assert.equal(peer.text('stderr'), 'err\n');
  });

  it('stdin without a TTY ends with the user eof (cat terminates)', async () => {
    const peer = await open({ kind: 'shell', service: 'main', tty: false, command: 'cat; echo done' });
    await peer.control('ready');
    peer.stdin('abc');
    peer.send({ type: 'eof' });
    assert.equal((await peer.control('exit')).code, 0);
    assert.equal(peer.text('stdout'), 'abcdone\n');
  });

  it("a tunnel to the service's port on its network, with half-close", async () => {
    const peer = await open({ kind: 'tcp', service: 'echo', port: 7000 });
    await peer.control('ready');
    peer.ws.send(Buffer.from('ping'));
    await waitFor('the echo', () => Buffer.concat(peer.bytes).toString() === 'ping');
    peer.send({ type: 'eof' }); // cat reads EOF and ends, so nc closes the connection
    await peer.control('eof');
    assert.equal(await peer.closed, 1000);
  });

  it('slow user: the exec output is held back while the user does not read, and nothing is lost', async (t) => {
    const [main] = (await ourContainers(namespace)).filter((c) => serviceOf(c) === 'main');
    assert.ok(main);
    const total = 64 * MiB;
    const peer = await open({
      kind: 'shell',
      service: 'main',
      tty: false,
      command: `head -c ${total} /dev/zero | tee /tmp/teed`,
    });
    peer.ws.pause();
    peer.onBytes = () => undefined;
    const teed = async (): Promise<number> =>
      Number((await exec(main.Id, 'stat -c %s /tmp/teed 2>/dev/null || echo 0')).trim());
    let last = -1;
    await waitFor(
      'the command to stall',
      async () => {
        const now = await teed();
        const stalled = now === last && now > 0;
        last = now;
        return stalled;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    t.diagnostic(`exec output held back after ${(last / MiB).toFixed(1)} MiB of 64`);
    assert.ok(last < 24 * MiB, `the command wrote ${(last / MiB).toFixed(1)} MiB of 64 before it was held back`);
    peer.ws.resume();
    assert.equal((await peer.control('exit', 60_000)).code, 0);
    assert.equal(peer.channelBytes[1], total);
  });
});
