import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import pino from 'pino';
import { ensureBusyboxImage, run, tempDir, waitFor } from '@flotilla/testkit';
import { deltaTag } from '../deltas/delta-tag.js';
import {
  type Harness,
  cleanup,
  docker,
  harness,
  localImage,
  ourContainers,
  reportedApp,
  reportedDone,
  startHarnessAgent,
} from '../test-support/fixtures.js';

/**
 * The agent's own pull from Flotilla's registry (pull/resumable-pull.ts) with the real server, agent and engine: a
 * layer download cut mid-way (the tap stalls it, then drops the link) resumes with Range where it stopped, so the
 * layer's bytes cross the link once, and the image the engine then runs is the one pushed.
 */
const PAYLOAD_BYTES = 2 * 1024 * 1024;
const HELD = 512 * 1024;
const AGENT_BIN = fileURLToPath(new URL('../../../../bin/flotilla-agent', import.meta.url));

/** Builds an image with an incompressible payload layer, pushes it, removes every local copy; ref and image ID. */
async function pushImage(h: Harness): Promise<{ ref: string; id: string }> {
  const base = await ensureBusyboxImage();
  const dir = await tempDir('flotilla-pull-it-');
  try {
    await writeFile(join(dir.path, 'payload'), randomBytes(PAYLOAD_BYTES));
    await writeFile(
      join(dir.path, 'Dockerfile'),
      [
        `FROM ${base}`,
        'COPY payload /payload',
        `CMD ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]`,
      ].join('\n'),
    );
    const local = `flotilla-pull-it/main:${randomBytes(4).toString('hex')}`;
    await run('docker', ['build', '-q', '-t', local, dir.path]);
    const id = (await docker.getImage(local).inspect()).Id;
    const ref = await h.cp.push(local, 'main');
    await docker.getImage(local).remove({ force: true });
    await run('docker', ['rmi', '-f', ref]).catch(() => undefined);
    const gone = await docker
      .getImage(id)
      .inspect()
      .then(
        () => false,
        () => true,
      );
    assert.ok(gone, 'the image must not be local before the release');
    return { ref, id };
  } finally {
    await dir.remove();
  }
}

/** Puts an OCI index naming `ref`'s manifest for this engine's platform (as `docker buildx` pushes); its reference. */
async function pushIndex(h: Harness, ref: string): Promise<string> {
  const [repoPath = '', digest = ''] = ref.slice(h.cp.tap.host.length + 1).split('@');
  const base = h.cp.tap.url;
  const basic = Buffer.from(`admin:${h.cp.adminKey}`).toString('base64');
  const scope = `repository:${repoPath}:pull,push`;
  const tokenAnswer = await fetch(`${base}/auth/v1/token?service=${h.cp.tap.host}&scope=${encodeURIComponent(scope)}`, {
    headers: { authorization: `Basic ${basic}` },
  });
  const { token } = (await tokenAnswer.json()) as { token: string };
  const manifest = await fetch(`${base}/v2/${repoPath}/manifests/${digest}`, {
    headers: { authorization: `Bearer ${token}`, accept: 'application/vnd.docker.distribution.manifest.v2+json' },
  });
  const child = Buffer.from(await manifest.arrayBuffer());
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        {
          mediaType: manifest.headers.get('content-type'),
          digest,
          size: child.length,
          platform: { os: 'linux', architecture: (await docker.version()).Arch },
        },
      ],
    }),
  );
  const put = await fetch(`${base}/v2/${repoPath}/manifests/multi`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/vnd.oci.image.index.v1+json' },
    body: index,
  });
  assert.equal(put.status, 201, await put.text());
  return `${h.cp.tap.host}/${repoPath}@${put.headers.get('docker-content-digest')}`;
}

/** Bytes of the partial layer download in the agent's data folder (0 when none). */
async function partial(h: Harness): Promise<number> {
  const dir = join(h.dataDir, 'layers');
  const name = (await readdir(dir).catch(() => [] as string[])).find((n) => n.endsWith('.part'));
  return name ? ((await stat(join(dir, name)).catch(() => undefined))?.size ?? 0) : 0;
}

/** The payload layer's downloads as the tap saw them: [Range, status, bytes passed], and the layer's size. */
function payloadDownloads(h: Harness) {
  const big = h.cp.tap.blobDownloads.filter((d) => d.length > HELD || d.range !== undefined);
  const digests = new Set(big.map((d) => d.digest));
  assert.equal(digests.size, 1, `one large layer was downloaded: ${JSON.stringify(h.cp.tap.blobDownloads)}`);
  const size = big[0]?.length ?? 0;
  return { size, seen: big.map((d) => [d.range, d.status, d.bytes]) };
}

describe('resumable pulls', { timeout: 120_000 }, () => {
  it('a layer download cut mid-way resumes where it stopped, reporting its progress meanwhile', async () => {
    const h = await harness();
    let image: { ref: string; id: string } | undefined;
    let agent: Awaited<ReturnType<typeof startHarnessAgent>> | undefined;
    try {
      image = await pushImage(h);
      const records: Array<{ msg?: string }> = [];
      const logger = pino({ level: 'info' }, { write: (line: string) => void records.push(JSON.parse(line)) });
      agent = await startHarnessAgent(h, { logger });
      const uuid = agent.state().uuid;
      h.cp.tap.stallNextBlobDownload(HELD);
      const commit = await h.cp.release({ services: { main: { image: image.ref } } });
      await waitFor('part of the layer on disk', async () => (await partial(h)) === HELD, { timeoutMs: 30_000 });
      const reported = await waitFor(
        'download progress reported',
        () => {
          const progress = reportedApp(h, uuid)?.releases[commit]?.services.main?.download_progress ?? 0;
          return progress > 0 ? progress : undefined;
        },
        { timeoutMs: 10_000 },
      );
      assert.ok(reported > 0 && reported < 100, `progress ${reported}% while a quarter of the layer is on disk`);
      h.cp.tap.releaseStalls();
      await waitFor('release running', () => reportedDone(h, uuid, commit), { timeoutMs: 60_000 });
      const [container] = (await ourContainers(h.namespace)).filter((c) => c.State === 'running');
      assert.equal(container?.ImageID, image.id, 'the engine runs the image pushed');
      const { size, seen } = payloadDownloads(h);
      assert.deepEqual(seen, [
        [undefined, 200, HELD],
        [`bytes=${HELD}-`, 206, size - HELD],
      ]);
      assert.ok(size > PAYLOAD_BYTES, `the layer blob is ${size} bytes`);
      assert.equal((await docker.getImage(deltaTag(image.ref)!).inspect()).Id, image.id);
      assert.ok(records.some((r) => r.msg === 'image pulled by the agent'));
      assert.ok(!records.some((r) => r.msg === 'agent-side pull failed; the engine pulls the image instead'));
      assert.deepEqual(await readdir(join(h.dataDir, 'layers')), [], 'no layer file is left once loaded');
    } finally {
      await agent?.stop();
      await cleanup(h.namespace, image ? [image.ref, image.id] : []);
      await h.remove();
    }
  });

  it('an image the agent does not pull itself (a multi-platform index) is pulled by the engine, saying why', async () => {
    const h = await harness();
    let image: { ref: string; id: string } | undefined;
    let indexRef: string | undefined;
    let agent: Awaited<ReturnType<typeof startHarnessAgent>> | undefined;
    try {
      image = await pushImage(h);
      indexRef = await pushIndex(h, image.ref);
      const records: Array<{ msg?: string; reason?: string }> = [];
      const logger = pino({ level: 'info' }, { write: (line: string) => void records.push(JSON.parse(line)) });
      agent = await startHarnessAgent(h, { logger });
      const uuid = agent.state().uuid;
      const commit = await h.cp.release({ services: { main: { image: indexRef } } });
      await waitFor('release running', () => reportedDone(h, uuid, commit), { timeoutMs: 60_000 });
      const [container] = (await ourContainers(h.namespace)).filter((c) => c.State === 'running');
      assert.equal(container?.ImageID, image.id);
      const fellBack = records.find((r) => r.msg === 'agent-side pull failed; the engine pulls the image instead');
      assert.match(fellBack?.reason ?? '', /multi-platform index/);
      assert.ok((await docker.getImage(indexRef).inspect()).RepoDigests.includes(indexRef), 'the engine pulled it');
    } finally {
      await agent?.stop();
      await cleanup(h.namespace, [...(image ? [image.ref, image.id] : []), ...(indexRef ? [indexRef] : [])]);
      await h.remove();
    }
  });

  it('a device without room for the layers says INSUFFICIENT_DISK and pulls nothing', {
    skip: process.getuid?.() === 0 ? false : 'mounting a small tmpfs needs root',
  }, async () => {
    const h = await harness();
    let image: { ref: string; id: string } | undefined;
    let agent: Awaited<ReturnType<typeof startHarnessAgent>> | undefined;
    // The agent's layer folder on a 256 KiB filesystem: the payload layer is 2 MiB.
    const layers = join(h.dataDir, 'layers');
    await mkdir(layers, { recursive: true });
    await run('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0700', 'tmpfs', layers]);
    try {
      image = await pushImage(h);
      const records: Array<{ msg?: string; err?: string }> = [];
      const logger = pino({ level: 'info' }, { write: (line: string) => void records.push(JSON.parse(line)) });
      agent = await startHarnessAgent(h, { logger });
      await h.cp.release({ services: { main: { image: image.ref } } });
      const refused = await waitFor(
        'a pass refused for want of disk',
        () => records.find((r) => r.msg === 'reconcile pass failed' && r.err?.includes('not enough space to update')),
        { timeoutMs: 30_000 },
      );
      assert.match(refused.err ?? '', /MB needed in .*layers, \d+ MB free; the running release is kept/);
      assert.equal(h.cp.tap.blobDownloads.filter((d) => d.length > HELD).length, 0, 'no layer was downloaded');
      assert.ok(!records.some((r) => r.msg === 'agent-side pull failed; the engine pulls the image instead'));
      assert.equal(await localImage(image.ref), undefined, 'the engine did not pull it either');
    } finally {
      await agent?.stop();
      await run('umount', [layers]).catch(() => undefined);
      await cleanup(h.namespace, image ? [image.ref, image.id] : []);
      await h.remove();
    }
  });

  it('an agent killed (-9) mid-layer resumes the layer from the bytes on disk when it starts again', async () => {
    const h = await harness();
    let image: { ref: string; id: string } | undefined;
    const started: ChildProcess[] = [];
    const agentLog = join(h.dir, 'agent.log');
    const agentProcess = () => {
      // The agents' log, shown if the release does not come up.
      const out = openSync(agentLog, 'a');
      const child = spawn(
        AGENT_BIN,
        ['--config', h.configPath, '--data', h.dataDir, '--namespace', h.namespace, '--poll-interval', '300'],
        { stdio: ['ignore', out, out] },
      );
      closeSync(out);
      started.push(child);
      return child;
    };
    try {
      image = await pushImage(h);
      await mkdir(h.dataDir, { recursive: true });
      const first = agentProcess();
      const uuid = await waitFor(
        'the agent registered',
        async () => {
          const config = JSON.parse(await readFile(h.configPath, 'utf8')) as { uuid?: string };
          return config.uuid && (await h.cp.registered(config.uuid)) ? config.uuid : undefined;
        },
        { timeoutMs: 30_000 },
      );
      h.cp.tap.stallNextBlobDownload(HELD);
      const commit = await h.cp.release({ services: { main: { image: image.ref } } });
      await waitFor('part of the layer on disk', async () => (await partial(h)) === HELD, { timeoutMs: 30_000 });
      const exited = new Promise((resolve) => first.once('exit', resolve));
      first.kill('SIGKILL');
      await exited;
      h.cp.tap.releaseStalls();
      agentProcess();
      await waitFor('release running', () => reportedDone(h, uuid, commit), { timeoutMs: 60_000 }).catch(
        async (error: Error) => {
          const tail = (await readFile(agentLog, 'utf8')).split('\n').slice(-40).join('\n');
          throw new Error(`${error.message}; the agent's log ends:\n${tail}`);
        },
      );
      const [container] = (await ourContainers(h.namespace)).filter((c) => c.State === 'running');
      assert.equal(container?.ImageID, image.id);
      const { size, seen } = payloadDownloads(h);
      assert.deepEqual(seen, [
        [undefined, 200, HELD],
        [`bytes=${HELD}-`, 206, size - HELD],
      ]);
    } finally {
      for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await cleanup(h.namespace, image ? [image.ref, image.id] : []);
      await h.remove();
    }
  });
});
