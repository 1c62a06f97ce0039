import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, it } from 'node:test';
import pino from 'pino';
import { FlotillaError } from '@flotilla/protocol';
import type { TargetRecord } from '../store/store.js';
import { loadPreload, parsePreloadManifest } from './preload.js';

const hex = (c: string) => c.repeat(64);
const REF = `registry.example:8080/v2/abc@sha256:${hex('d')}`;
const TAG = `registry.example:8080/v2/abc:flotilla-delta-${hex('d')}`;
const IMAGE_ID = `sha256:${hex('c')}`;
const TAR = Buffer.from('a docker save tar, as far as this test is concerned');

function manifest(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: 1,
    createdAt: '2026-12-02T04:00:00.000Z',
    fleet: { id: 3, uuid: 'f'.repeat(32), slug: 'plant' },
    release: { id: 9, commit: 'abcdef1', version: '1.0.0' },
    target: {
      name: '',
      config: {},
      apps: {
        ['f'.repeat(32)]: {
          id: 3,
          name: 'plant',
          releases: { abcdef1: { id: 9, services: { main: { id: 1, image_id: 1, image: REF } } } },
        },
      },
    },
    images: [
      {
        ref: REF,
        imageId: IMAGE_ID,
        file: 'image-1.tar',
        sha256: `sha256:${createHash('sha256').update(TAR).digest('hex')}`,
        size: TAR.length,
      },
    ],
    ...overrides,
  };
}

const bytes = (value: unknown) => Buffer.from(JSON.stringify(value));

function refusal(value: unknown): string {
  try {
    parsePreloadManifest(Buffer.isBuffer(value) ? value : bytes(value));
  } catch (error) {
    assert.ok(error instanceof FlotillaError);
    assert.equal(error.code, 'PRELOAD_INVALID');
    return error.message;
  }
  assert.fail('the manifest was accepted');
}

describe('preload manifest validation', () => {
  it('accepts what os preload writes', () => {
    assert.equal(parsePreloadManifest(bytes(manifest())).release.commit, 'abcdef1');
  });

  const image = (patch: Record<string, unknown>) => ({ images: [{ ...(manifest().images as object[])[0], ...patch }] });
  const cases: Array<[string, unknown, RegExp]> = [
    ['not JSON', Buffer.from('{'), /not JSON/],
    ['a file name with a path', manifest(image({ file: '../../etc/passwd' })), /images\.0\.file/],
    ['a file name that is the manifest', manifest(image({ file: 'manifest.json' })), /images\.0\.file/],
    ['an image not pinned by digest', manifest(image({ ref: 'busybox:latest' })), /images\.0\.ref/],
    ['a service without an image file', manifest({ images: [] }), /no image file for service main/],
    ['another fleet app', manifest({ fleet: { id: 3, uuid: 'e'.repeat(32), slug: 'plant' } }), /fleet's app/],
    ['another release', manifest({ release: { id: 9, commit: 'fedcba9', version: '1' } }), /exactly the release/],
    ['a newer format', manifest({ version: 2 }), /version/],
    ['an unknown key', manifest({ extra: true }), /extra|Unrecognized/],
  ];
  for (const [name, value, expected] of cases)
    it(`refuses ${name}`, () => {
      assert.match(refusal(value), expected);
    });
});

/** An engine that keeps tags in a map: `docker load` of TAR tags TAG with `loads` (the ID a real load would give). */
function engine(loads: string) {
  const tags = new Map<string, string>();
  let loaded = 0;
  return {
    tags,
    loaded: () => loaded,
    loadImage: async (tar: Readable) => {
      for await (const _ of tar);
      loaded += 1;
      tags.set(TAG, loads);
    },
    imageId: async (ref: string) => tags.get(ref),
    removeImage: async (ref: string) => void tags.delete(ref),
  };
}

function store(target?: TargetRecord) {
  const known: string[] = [];
  let preloaded: string | null = null;
  let record = target;
  return {
    known,
    getTarget: () => record,
    setTarget: (r: TargetRecord) => void (record = r),
    addKnownImage: (ref: string) => void known.push(ref),
    getPreloaded: () => preloaded,
    setPreloaded: (d: string) => void (preloaded = d),
  };
}

describe('loadPreload', () => {
  let dir: string;
  const log = pino({ level: 'silent' });
  const signal = new AbortController().signal;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'preload-'));
    await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest()));
    await writeFile(join(dir, 'image-1.tar'), TAR);
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('loads the images, stores the target once, and is a no-op after', async () => {
    const e = engine(IMAGE_ID);
    const s = store();
    const first = await loadPreload({ dir, engine: e, store: s, log, signal });
    assert.deepEqual(first, { status: 'loaded', commit: 'abcdef1', images: 1, target: true });
    assert.equal(s.getTarget()?.source, 'cloud');
    assert.equal(s.getTarget()?.etag, null);
    assert.deepEqual(Object.keys(s.getTarget()?.device.apps ?? {}), ['f'.repeat(32)]);
    assert.deepEqual(s.known, [REF]);
    assert.deepEqual(await readdir(dir), ['manifest.json']);
    assert.deepEqual(await loadPreload({ dir, engine: e, store: s, log, signal }), {
      status: 'loaded-before',
      commit: 'abcdef1',
    });
    assert.equal(e.loaded(), 1);
  });

  it('skips an image an interrupted start already loaded', async () => {
    const e = engine(IMAGE_ID);
    e.tags.set(TAG, IMAGE_ID);
    await loadPreload({ dir, engine: e, store: store(), log, signal });
    assert.equal(e.loaded(), 0);
  });

  it('refuses a tar whose bytes do not match, storing nothing', async () => {
    await writeFile(join(dir, 'image-1.tar'), Buffer.from(TAR).fill(0x41, 0, 1));
    const s = store();
    await assert.rejects(loadPreload({ dir, engine: engine(IMAGE_ID), store: s, log, signal }), /has digest/);
    assert.equal(s.getTarget(), undefined);
    assert.equal(s.getPreloaded(), null);
  });

  it('refuses and untags an image whose loaded ID is not the manifest one', async () => {
    const e = engine(`sha256:${hex('0')}`);
    const s = store();
    await assert.rejects(loadPreload({ dir, engine: e, store: s, log, signal }), /not sha256:c/);
    assert.equal(e.tags.has(TAG), false);
    assert.equal(s.getTarget(), undefined);
  });

  it('never replaces a target the device already has', async () => {
    const existing: TargetRecord = { device: { name: 'd', config: {}, apps: {} }, etag: '"x"', source: 'cloud' };
    const s = store(existing);
    const outcome = await loadPreload({ dir, engine: engine(IMAGE_ID), store: s, log, signal });
    assert.equal(outcome.status === 'loaded' && outcome.target, false);
    assert.equal(s.getTarget(), existing);
  });

  it('does nothing without a manifest', async () => {
    await rm(join(dir, 'manifest.json'));
    assert.deepEqual(await loadPreload({ dir, engine: engine(IMAGE_ID), store: store(), log, signal }), {
      status: 'none',
    });
  });
});
