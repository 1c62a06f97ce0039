import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { describe, it } from 'node:test';
import { ensureBusyboxImage, run, tempDir, waitFor } from '@flotilla/testkit';
import {
  type Harness,
  cleanup,
  deviceKeyOf,
  docker,
  harness,
  ourContainers,
  reportedApp,
  reportedDone,
  serviceOf,
  startHarnessAgent,
} from '../test-support/fixtures.js';
import { deltaTag } from './delta-tag.js';
import { freeBytes } from './layer-cache.js';

/**
 * Deltas end to end: the real server (computing with xdelta3 from its registry), the real agent and the real engine.
 * Release A and release B of one service differ by a small change in a 1 MiB payload layer plus a marker layer; the
 * device runs A (pulled), then moves to B, which it must get by delta (or, when the delta is bad, by a pull).
 */
const PAYLOAD_BYTES = 1024 * 1024;
const AGENT_BIN = fileURLToPath(new URL('../../../../bin/flotilla-agent', import.meta.url));

interface Pair {
  a: string;
  b: string;
  /** B's image ID as built, which is its config digest in the registry. */
  bId: string;
  aId: string;
}

/** Everything a test's pair may leave in the engine: both references, B's delta tag, both images. */
const pairImages = (pair: Pair | undefined): string[] =>
  pair ? [pair.a, pair.b, deltaTag(pair.b) ?? pair.b, pair.bId, pair.aId] : [];

/** Builds A and B (B: 300 KiB of A's payload replaced), pushes both, removes every local copy; their digest refs. */
async function pushPair(h: Harness, nonce: string): Promise<Pair> {
  const base = await ensureBusyboxImage();
  const dir = await tempDir('flotilla-delta-it-');
  try {
    const payload = randomBytes(PAYLOAD_BYTES);
    const build = async (name: string, bytes: Buffer) => {
      const context = join(dir.path, name);
      await mkdir(context);
      await writeFile(join(context, 'payload'), bytes);
      await writeFile(
        join(context, 'Dockerfile'),
        [
          `FROM ${base}`,
          'COPY payload /payload',
          `RUN echo ${name} > /release && echo ${nonce} > /.nonce`,
          `CMD ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]`,
        ].join('\n'),
      );
      const tag = `flotilla-delta-it/${name}:${nonce}`;
      await run('docker', ['build', '-q', '-t', tag, context]);
      return tag;
    };
    const changed = Buffer.from(payload);
    randomBytes(300 * 1024).copy(changed, 200 * 1024);
    const localA = await build('a', payload);
    const localB = await build('b', changed);
    const bId = (await docker.getImage(localB).inspect()).Id;
    const aId = (await docker.getImage(localA).inspect()).Id;
    const a = await h.cp.push(localA, 'main');
    const b = await h.cp.push(localB, 'main');
    for (const ref of [localA, localB]) await docker.getImage(ref).remove({ force: true });
    await run('docker', ['rmi', '-f', a, b]).catch(() => undefined);
    assert.equal(
      await docker
        .getImage(b)
        .inspect()
        .then(
          () => true,
          () => false,
        ),
      false,
      'B must not be local before the update',
    );
    return { a, b, bId, aId };
  } finally {
    await dir.remove();
  }
}

async function metric(h: Harness, name: string, label = ''): Promise<number> {
  const text = await (await fetch(`${h.cp.server.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${label} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

type AgentOptions = Parameters<typeof startHarnessAgent>[1];
type StartAgent = (options?: AgentOptions) => Promise<Awaited<ReturnType<typeof startHarnessAgent>>>;

/**
 * A fresh device harness with a pushed pair, for `body`; `start` starts an agent on it (deltas pending for 30 s at
 * most, unless `options` say otherwise). Afterwards every agent started is stopped and the harness removed.
 */
async function withPair(body: (h: Harness, pair: Pair, start: StartAgent) => Promise<void>): Promise<void> {
  const h = await harness();
  let pair: Pair | undefined;
  const agents: Array<Awaited<ReturnType<typeof startHarnessAgent>>> = [];
  try {
    pair = await pushPair(h, randomBytes(4).toString('hex'));
    await body(h, pair, async (options = {}) => {
      const agent = await startHarnessAgent(h, { deltaPendingLimitMs: 30_000, ...options });
      agents.push(agent);
      return agent;
    });
  } finally {
    for (const agent of agents) await agent.stop();
    await cleanup(h.namespace, pairImages(pair));
    await h.remove();
  }
}

/** Runs A on a fresh device, then releases B; resolves once B runs. Returns the container's image ID. */
async function updateAtoB(h: Harness, pair: Pair, start: StartAgent, agentOptions: AgentOptions = {}) {
  const agent = await start(agentOptions);
  const uuid = agent.state().uuid;
  const commitA = await h.cp.release({ services: { main: { image: pair.a } } });
  await waitFor('release A running', () => reportedDone(h, uuid, commitA), { timeoutMs: 60_000 });
  const commitB = await h.cp.release({ services: { main: { image: pair.b } } });
  await waitFor('release B running', () => reportedDone(h, uuid, commitB), { timeoutMs: 90_000 });
  const [container] = (await ourContainers(h.namespace)).filter((c) => c.State === 'running');
  assert.ok(container, 'one container runs');
  return { agent, uuid, imageId: container.ImageID };
}

/** The server's stored delta of the only computed pair: its file and pair record. */
async function storedDelta(h: Harness) {
  const root = join(h.cp.dataDir, 'registry', 'deltas');
  const [pairName] = await readdir(join(root, 'pairs'));
  assert.ok(pairName, 'a pair was computed');
  const pairFile = join(root, 'pairs', pairName);
  const pair = JSON.parse(await readFile(pairFile, 'utf8')) as { ok: boolean; digest: string; size: number };
  const hex = pair.digest.slice('sha256:'.length);
  return { root, pairFile, pair, file: join(root, 'sha256', hex.slice(0, 2), hex) };
}

/** What the agent logged, one record per line. */
interface LogRecord {
  msg?: string;
  err?: string;
  freedBytes?: number;
  baseLayersFromCache?: number;
}

/**
 * A pair pushed and release A running, with the folder `mountPoint(h)` on a tmpfs of `size` (a device short of
 * disk) and the agent's log kept in `records`; everything is taken down afterwards.
 */
async function withSmallDisk(
  mountPoint: (h: Harness) => string,
  size: string,
  body: (ctx: { h: Harness; pair: Pair; records: LogRecord[]; uuid: string }) => Promise<void>,
): Promise<void> {
  const h = await harness();
  let pair: Pair | undefined;
  let agent: Awaited<ReturnType<typeof startHarnessAgent>> | undefined;
  const dir = mountPoint(h);
  await mkdir(dir, { recursive: true });
  await run('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir]);
  try {
    pair = await pushPair(h, randomBytes(4).toString('hex'));
    const records: LogRecord[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void records.push(JSON.parse(line)) });
    agent = await startHarnessAgent(h, { deltaPendingLimitMs: 30_000, logger });
    const uuid = agent.state().uuid;
    const commitA = await h.cp.release({ services: { main: { image: pair.a } } });
    await waitFor('release A running', () => reportedDone(h, uuid, commitA), { timeoutMs: 60_000 });
    await body({ h, pair, records, uuid });
  } finally {
    await agent?.stop();
    await cleanup(h.namespace, pairImages(pair));
    await run('umount', [dir]).catch(() => undefined);
    await h.remove();
  }
}

describe('delta updates', { timeout: 480_000 }, () => {
  it('moves A → B by delta: the image ID is the registry’s, no layer of B is pulled, the bytes saved are counted', () =>
    withPair(async (h, pair, start) => {
      const pullsBefore = h.cp.tap.pullsStarted;
      const updated = await updateAtoB(h, pair, start);
      assert.equal(updated.imageId, pair.bId, 'the rebuilt image is byte for byte the one pushed');
      assert.equal(h.cp.tap.pullsStarted, pullsBefore + 1, 'only A was pulled');
      const inspected = await docker.getImage(deltaTag(pair.b)!).inspect();
      assert.equal(inspected.Id, pair.bId);
      const { pair: stored } = await storedDelta(h);
      assert.equal(h.cp.tap.deltaDownloads.length, 1);
      assert.equal(h.cp.tap.deltaDownloads[0]?.bytes, stored.size);
      assert.ok(stored.size < 400 * 1024, `delta of ${stored.size} bytes for a 300 KiB change`);
      // A range past its end is refused as HTTP says (416 and the size), with an error body, not a server failure.
      const download = h.cp.tap.requests.find(
        (r) => r.startsWith('GET ') && r.includes(stored.digest.slice('sha256:'.length)),
      );
      assert.ok(download, 'the delta download went through the tap');
      const beyond = await fetch(`${h.cp.server.url}${download.slice('GET '.length)}`, {
        headers: { authorization: `Bearer ${await deviceKeyOf(h)}`, range: `bytes=${stored.size}-` },
      });
      assert.equal(beyond.status, 416);
      assert.equal(beyond.headers.get('content-range'), `bytes */${stored.size}`);
      assert.equal(((await beyond.json()) as { error: { code: string } }).error.code, 'VALIDATION_FAILED');
      assert.equal(await metric(h, 'flotilla_delta_outcomes_total', '{outcome="applied"}'), 1);
      const saved = await metric(h, 'flotilla_delta_saved_bytes_total');
      assert.ok(saved > PAYLOAD_BYTES / 2, `saved ${saved} bytes`);
      // The layer cache keeps A's pulled blobs and B's rebuilt top layer for the next delta (no docker save then).
      const cached = await readdir(join(h.dataDir, 'layer-cache'));
      const top = inspected.RootFS.Layers?.at(-1)?.slice('sha256:'.length);
      assert.ok(cached.includes(`${top}.tar`), `B’s rebuilt layer is cached: ${cached.join(', ')}`);
      assert.ok(
        cached.some((name) => name.endsWith('.gz')),
        `A’s pulled layers are cached: ${cached.join(', ')}`,
      );
    }));

  it('a service the device does not run yet gets its image by delta from another service’s image', () =>
    withPair(async (h, pair, start) => {
      const agent = await start();
      const uuid = agent.state().uuid;
      const commitA = await h.cp.release({ services: { main: { image: pair.a } } });
      await waitFor('release A running', () => reportedDone(h, uuid, commitA), { timeoutMs: 60_000 });
      // Nothing in the layer cache, as for an image the engine pulled itself: A's layers come from `docker save`,
      // and the one the delta needed is kept for the next delta.
      const cacheDir = join(h.dataDir, 'layer-cache');
      await rm(cacheDir, { recursive: true, force: true });
      // B as a new service beside main (which keeps A): no container of its own to take a delta from.
      const commitB = await h.cp.release({ services: { main: { image: pair.a }, extra: { image: pair.b } } });
      await waitFor('release B running', () => reportedDone(h, uuid, commitB), { timeoutMs: 90_000 });
      const images = new Map((await ourContainers(h.namespace)).map((c) => [serviceOf(c), c.ImageID]));
      assert.deepEqual(Object.fromEntries(images), { main: pair.aId, extra: pair.bId });
      const { pair: stored } = await storedDelta(h);
      assert.equal(h.cp.tap.deltaDownloads.length, 1);
      assert.equal(h.cp.tap.deltaDownloads[0]?.bytes, stored.size);
      assert.equal(await metric(h, 'flotilla_delta_outcomes_total', '{outcome="applied"}'), 1);
      assert.equal(
        h.cp.tap.blobDownloads.filter((d) => d.length > PAYLOAD_BYTES / 2).length,
        1,
        'only A’s payload layer was pulled (for release A), not B’s',
      );
      const cached = await readdir(cacheDir);
      const aLayers = (await docker.getImage(pair.aId).inspect()).RootFS.Layers ?? [];
      assert.ok(
        aLayers.some((layer) => cached.includes(`${layer.slice('sha256:'.length)}.tar`)),
        `a layer of A read from docker save is cached: ${cached.join(', ')} (A: ${aLayers.join(', ')})`,
      );
    }));

  it('a corrupted delta is detected and the device pulls B instead', () =>
    withPair(async (h, pair, start) => {
      const corrupt = async () => {
        // Computed ahead when B is released (the device runs A): flip bytes in it and record the flipped file's
        // digest, so the download checks pass and only the rebuild's own checks can catch it.
        const stored = await storedDelta(h).catch(() => undefined);
        if (!stored?.pair.ok) return false;
        const bytes = await readFile(stored.file);
        for (let i = 64; i < bytes.length; i += 97) bytes[i] = (bytes[i] ?? 0) ^ 0xff;
        const hex = createHash('sha256').update(bytes).digest('hex');
        const file = join(stored.root, 'sha256', hex.slice(0, 2), hex);
        await mkdir(join(stored.root, 'sha256', hex.slice(0, 2)), { recursive: true });
        await writeFile(file, bytes);
        // The original file too, in place: a device that got the pair's old digest (seen once under load: the delta
        // was applied, not caught) then fails its download check instead, and still falls back.
        await writeFile(stored.file, bytes);
        await writeFile(`${stored.pairFile}.tmp`, JSON.stringify({ ...stored.pair, digest: `sha256:${hex}` }));
        await rename(`${stored.pairFile}.tmp`, stored.pairFile);
        return true;
      };
      // The device hears of B at once (its connection), so its delta asks are held pending at the tap until the
      // delta the server computed ahead has been corrupted.
      // The agent's log, where it says why it does not update (its pass errors are logged, not reported).
      const records: Array<{ msg?: string; err?: string }> = [];
      const logger = pino({ level: 'info' }, { write: (line: string) => void records.push(JSON.parse(line)) });
      const agent = await start({ logger });
      const uuid = agent.state().uuid;
      const commitA = await h.cp.release({ services: { main: { image: pair.a } } });
      await waitFor('release A running', () => reportedDone(h, uuid, commitA), { timeoutMs: 60_000 });
      h.cp.tap.holdDeltasPending(true);
      const commitB = await h.cp.release({ services: { main: { image: pair.b } } });
      await waitFor('delta computed ahead and corrupted', corrupt, { timeoutMs: 30_000 });
      h.cp.tap.holdDeltasPending(false);
      await waitFor('release B running', () => reportedDone(h, uuid, commitB), { timeoutMs: 90_000 });
      const [container] = (await ourContainers(h.namespace)).filter((c) => c.State === 'running');
      assert.equal(container?.ImageID, pair.bId);
      // What the agent logged about the delta, to tell a missing report from a missing count when this fails.
      const said = JSON.stringify(records.filter((r) => /delta|outcome/.test(r.msg ?? '')).map((r) => r.msg));
      assert.equal(await metric(h, 'flotilla_delta_outcomes_total', '{outcome="fallback"}'), 1, said);
      assert.equal(await metric(h, 'flotilla_delta_outcomes_total', '{outcome="applied"}'), 0);
      // The pull after the fallback (the agent's own, pull/resumable-pull.ts) tags B as a delta would; only B's own
      // image may carry the tag, never one rebuilt from the bad delta.
      assert.equal((await docker.getImage(deltaTag(pair.b)!).inspect()).Id, pair.bId, 'only B itself is tagged');
      assert.ok(
        records.some((r) => r.msg === 'image pulled by the agent'),
        'B came by the agent’s pull',
      );
      assert.ok(
        h.cp.tap.blobDownloads.some((d) => d.length > PAYLOAD_BYTES / 2),
        'B’s payload layer came from the registry',
      );
    }));

  it('a delta download cut mid-way resumes where it stopped: every byte crosses the link once', () =>
    withPair(async (h, pair, start) => {
      h.cp.tap.cutNextDeltaDownload(100 * 1024);
      const updated = await updateAtoB(h, pair, start);
      assert.equal(updated.imageId, pair.bId);
      const { pair: stored } = await storedDelta(h);
      const downloads = h.cp.tap.deltaDownloads;
      assert.equal(downloads.length, 2, JSON.stringify(downloads));
      assert.deepEqual(
        downloads.map((d) => [d.range, d.status, d.bytes]),
        [
          [undefined, 200, 100 * 1024],
          [`bytes=${100 * 1024}-`, 206, stored.size - 100 * 1024],
        ],
      );
    }));

  it('the service reports its download progress while the delta downloads', () =>
    withPair(async (h, pair, start) => {
      const agent = await start();
      const uuid = agent.state().uuid;
      const commitA = await h.cp.release({ services: { main: { image: pair.a } } });
      await waitFor('release A running', () => reportedDone(h, uuid, commitA), { timeoutMs: 60_000 });
      const held = 64 * 1024;
      h.cp.tap.stallNextDeltaDownload(held);
      const commitB = await h.cp.release({ services: { main: { image: pair.b } } });
      const progress = await waitFor(
        'download progress reported',
        () => {
          const reported = reportedApp(h, uuid)?.releases[commitB]?.services.main?.download_progress ?? 0;
          return reported > 0 ? reported : undefined;
        },
        { timeoutMs: 30_000 },
      );
      const { pair: stored } = await storedDelta(h);
      const expected = Math.floor((100 * held) / stored.size);
      assert.ok(progress > 0 && progress <= expected, `${progress}% reported, ${expected}% of the delta held`);
      h.cp.tap.releaseStalls();
      await waitFor('release B running', () => reportedDone(h, uuid, commitB), { timeoutMs: 60_000 });
      const [container] = (await ourContainers(h.namespace)).filter((c) => c.State === 'running');
      assert.equal(container?.ImageID, pair.bId);
    }));

  it('a delta not ready within the device’s limit falls back to a pull', () =>
    withPair(async (h, pair, start) => {
      h.cp.tap.holdDeltasPending(true);
      const updated = await updateAtoB(h, pair, start, { deltaPendingLimitMs: 1_500 });
      assert.equal(updated.imageId, pair.bId);
      assert.equal(h.cp.tap.deltaDownloads.length, 0);
      assert.equal(await metric(h, 'flotilla_delta_outcomes_total', '{outcome="fallback"}'), 1);
      assert.ok(
        h.cp.tap.blobDownloads.some((d) => d.length > PAYLOAD_BYTES / 2),
        'B’s payload layer came from the registry: B was pulled',
      );
    }));

  it(
    'a device without the free disk for the rebuild says INSUFFICIENT_DISK and keeps running its release',
    {
      skip: process.getuid?.() === 0 ? false : 'mounting a small tmpfs needs root',
    },
    () =>
      // The agent's delta folder on a 256 KiB filesystem: the rebuild of a 1 MiB layer needs several MiB.
      withSmallDisk(
        (h) => join(h.dataDir, 'deltas'),
        '256k',
        async ({ h, pair, records }) => {
          const pullsBefore = h.cp.tap.pullsStarted;
          await h.cp.release({ services: { main: { image: pair.b } } });
          const refused = await waitFor(
            'a pass refused for want of disk',
            () =>
              records.find((r) => r.msg === 'reconcile pass failed' && r.err?.includes('not enough space to update')),
            { timeoutMs: 60_000 },
          );
          assert.match(refused.err ?? '', /MB needed in .*deltas, \d+ MB free; the running release is kept/);
          const [container] = (await ourContainers(h.namespace)).filter((c) => c.State === 'running');
          assert.equal(container?.ImageID, pair.aId, 'release A still runs');
          assert.equal(h.cp.tap.pullsStarted, pullsBefore, 'B was not pulled instead');
          assert.equal(h.cp.tap.deltaDownloads.length, 0, 'no delta byte was downloaded');
          const local = await docker
            .getImage(pair.b)
            .inspect()
            .then(
              () => true,
              () => false,
            );
          assert.equal(local, false, 'B is not on the device');
        },
      ),
  );

  it(
    'a disk short only for what the layer cache holds: the cache gives up its oldest entries and the update goes by delta',
    {
      skip: process.getuid?.() === 0 ? false : 'mounting a small tmpfs needs root',
    },
    () =>
      // The agent's whole data folder on a 16 MiB filesystem, as on a device whose data partition is nearly full.
      withSmallDisk(
        (h) => h.dataDir,
        '16m',
        async ({ h, pair, records, uuid }) => {
          // Old entries (a day unused) fill the disk until 2.5 MiB are free: less than the rebuild of B's 1 MiB layer
          // needs (the rest of the delta, three copies of the layer and the cache's own), so without the cache giving
          // up some, this update would be refused for want of disk.
          const cacheDir = join(h.dataDir, 'layer-cache');
          const ours = new Set(await readdir(cacheDir));
          assert.ok(ours.size > 0, 'the pull of A left its layers in the cache');
          const MiB = 1024 * 1024;
          const junk: string[] = [];
          const dayAgo = new Date(Date.now() - 86_400_000);
          for (let left = (await freeBytes(h.dataDir)) - 2.5 * MiB; left > 0; left -= MiB) {
            const name = `${createHash('sha256').update(`junk ${junk.length}`).digest('hex')}.tar`;
            await writeFile(join(cacheDir, name), randomBytes(Math.min(MiB, left)));
            await utimes(join(cacheDir, name), dayAgo, dayAgo);
            junk.push(name);
          }
          const commitB = await h.cp.release({ services: { main: { image: pair.b } } });
          await waitFor('release B running', () => reportedDone(h, uuid, commitB), { timeoutMs: 90_000 });
          const [container] = (await ourContainers(h.namespace)).filter((c) => c.State === 'running');
          assert.equal(container?.ImageID, pair.bId);
          assert.equal(await metric(h, 'flotilla_delta_outcomes_total', '{outcome="applied"}'), 1, 'B came by delta');
          const shrunk = records.find((r) => r.msg === 'layer cache shrunk to make room for an update');
          assert.ok(shrunk?.freedBytes && shrunk.freedBytes >= MiB, 'the cache gave up entries');
          const left = new Set(await readdir(cacheDir));
          const junkLeft = junk.filter((name) => left.has(name)).length;
          assert.ok(
            junkLeft > 0 && junkLeft < junk.length,
            `only what was needed went (${junkLeft} of ${junk.length} left)`,
          );
          assert.ok(
            [...ours].every((name) => left.has(name)),
            'the least recently used went first: A’s layers stayed',
          );
          const applied = records.find((r) => r.msg === 'image rebuilt from a delta');
          assert.ok((applied?.baseLayersFromCache ?? 0) > 0, 'and the apply read them from the cache');
        },
      ),
  );

  it('an agent killed (-9) mid-download resumes the delta from the bytes on disk when it starts again', async () => {
    const h = await harness();
    const nonce = randomBytes(4).toString('hex');
    let pair: Pair | undefined;
    const started: ChildProcess[] = [];
    const agentProcess = () => {
      const child = spawn(
        AGENT_BIN,
        ['--config', h.configPath, '--data', h.dataDir, '--namespace', h.namespace, '--poll-interval', '300'],
        { stdio: ['ignore', 'ignore', process.env.FLOTILLA_TEST_LOG ? 'inherit' : 'ignore'] },
      );
      started.push(child);
      return child;
    };
    try {
      pair = await pushPair(h, nonce);
      const first = agentProcess();
      const uuid = await waitFor(
        'the agent registered',
        async () => {
          const config = JSON.parse(await readFile(h.configPath, 'utf8')) as { uuid?: string };
          return config.uuid && (await h.cp.registered(config.uuid)) ? config.uuid : undefined;
        },
        { timeoutMs: 30_000 },
      );
      const commitA = await h.cp.release({ services: { main: { image: pair.a } } });
      await waitFor('release A running', () => reportedDone(h, uuid, commitA), { timeoutMs: 60_000 });
      const held = 64 * 1024;
      h.cp.tap.stallNextDeltaDownload(held);
      const commitB = await h.cp.release({ services: { main: { image: pair.b } } });
      const partial = async () => {
        const dir = join(h.dataDir, 'deltas');
        const name = (await readdir(dir).catch(() => [] as string[])).find((n) => n.endsWith('.part'));
        return name ? (await stat(join(dir, name))).size : 0;
      };
      await waitFor('part of the delta on disk', async () => (await partial()) === held, { timeoutMs: 30_000 });
      const exited = new Promise((resolve) => first.once('exit', resolve));
      first.kill('SIGKILL');
      await exited;
      h.cp.tap.releaseStalls();
      agentProcess();
      await waitFor('release B running', () => reportedDone(h, uuid, commitB), { timeoutMs: 90_000 });
      const [container] = (await ourContainers(h.namespace)).filter((c) => c.State === 'running');
      assert.equal(container?.ImageID, pair.bId);
      const { pair: stored } = await storedDelta(h);
      assert.deepEqual(
        h.cp.tap.deltaDownloads.map((d) => [d.range, d.bytes]),
        [
          [undefined, held],
          [`bytes=${held}-`, stored.size - held],
        ],
      );
    } finally {
      for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await cleanup(h.namespace, pairImages(pair));
      await h.remove();
    }
  });
});
