import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FlotillaError, targetDeviceSchema, type TargetDevice } from '@flotilla/protocol';
import type { ModelContext } from '../compose/target-model.js';
import type { TargetRecord } from '../store/store.js';
import { TargetSource } from './target-source.js';

const context: ModelContext = {
  namespace: 'ns-',
  deviceUuid: 'a'.repeat(32),
  deviceType: 'generic-amd64',
  apiEndpoint: undefined,
  deviceApiKey: undefined,
  dockerSocket: '/var/run/docker.sock',
  supervisorApi: { port: 48484, key: 'sup-key' },
  serviceLockDir: (appId, name) => `/data/services/ns-${appId}/${name}`,
};

const device = (commit: string, config: Record<string, string> = {}): TargetDevice =>
  targetDeviceSchema.parse({
    name: 'd',
    config,
    apps: {
      appuuid: {
        id: 5,
        name: 'app',
        releases: {
          [commit]: { id: 1, services: { main: { id: 1, image_id: 1, image: 'img:1', composition: {} } } },
        },
      },
    },
  });

function memoryStore(): { getTarget(): TargetRecord | undefined; setTarget(r: TargetRecord): void; reads: number } {
  let record: TargetRecord | undefined;
  return {
    reads: 0,
    getTarget() {
      this.reads += 1;
      return record;
    },
    setTarget(r) {
      record = r;
    },
  };
}

describe('TargetSource', () => {
  it('has no model before any target, and keeps one model while the stored target is unchanged', () => {
    const store = memoryStore();
    const targets = new TargetSource({ store, context });
    assert.equal(targets.model(), null);
    assert.equal(targets.key(), 'null');
    store.setTarget({ device: device('c1'), etag: 'e1', source: 'cloud' });
    const first = targets.model();
    assert.equal(first?.apps[0]?.commit, 'c1');
    assert.equal(targets.model(), first, 'same object: no rebuild on a no-op pass');
    store.setTarget({ device: device('c2'), etag: 'e2', source: 'cloud' });
    assert.equal(targets.model()?.apps[0]?.commit, 'c2');
    assert.deepEqual(targets.commits(), { appuuid: 'c2' });
    assert.equal(targets.local(), undefined, 'a cloud target is not a local one');
  });

  it('stores a local target validated, and reports it as local', () => {
    const targets = new TargetSource({ store: memoryStore(), context });
    targets.setLocal(device('c1'));
    assert.equal(targets.local()?.apps.appuuid?.name, 'app');
    assert.throws(() => targets.setLocal({ name: 'd', apps: 'nope' } as unknown as TargetDevice));
  });

  it('overrides locks when configured or forced', () => {
    const store = memoryStore();
    const targets = new TargetSource({ store, context });
    store.setTarget({ device: device('c1'), etag: null, source: 'local' });
    assert.equal(targets.overrideLock(), false);
    targets.force.requested(1, true);
    assert.equal(targets.overrideLock(), true);
    targets.force.settle(targets.force.claim(), true);
    assert.equal(targets.overrideLock(), false);
    store.setTarget({ device: device('c1', { BALENA_SUPERVISOR_OVERRIDE_LOCK: '1' }), etag: null, source: 'local' });
    assert.equal(targets.overrideLock(), true);
    assert.equal(targets.lockOverrideConfigured(), true);
  });

  it('keeps the releases of a rejected target until a poll succeeds; says when the report changes', () => {
    const targets = new TargetSource({ store: memoryStore(), context });
    const rejection = new FlotillaError('VALIDATION_FAILED', 'bad', { details: { rejected: { appuuid: ['c9'] } } });
    const cases: Array<{ event: () => boolean; changed: boolean; rejected: Record<string, readonly string[]> }> = [
      { event: () => targets.polled({ ok: true, startedAt: 0 }), changed: false, rejected: {} },
      { event: () => targets.pollFailed(new Error('offline')), changed: false, rejected: {} },
      { event: () => targets.pollFailed(rejection), changed: true, rejected: { appuuid: ['c9'] } },
      { event: () => targets.polled({ ok: false, startedAt: 0 }), changed: false, rejected: { appuuid: ['c9'] } },
      { event: () => targets.polled({ ok: true, startedAt: 0 }), changed: true, rejected: {} },
    ];
    for (const [i, c] of cases.entries()) {
      assert.equal(c.event(), c.changed, `step ${i}: changed`);
      assert.deepEqual(targets.rejected(), c.rejected, `step ${i}: rejected`);
    }
  });

  it('is unreadable when the store throws', () => {
    const targets = new TargetSource({
      store: {
        getTarget: () => {
          throw new Error('database is locked');
        },
        setTarget: () => undefined,
      },
      context,
    });
    assert.equal(targets.readable(), false);
  });
});
