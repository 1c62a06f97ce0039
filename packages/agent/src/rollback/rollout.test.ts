import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { targetDeviceSchema, type DeviceRollback, type TargetDevice } from '@flotilla/protocol';
import { checkEveryMs, soakMsOf } from './release-watch.js';
import {
  EMPTY_ROLLOUT,
  committedApp,
  committedImages,
  effectiveDevice,
  forgetStale,
  parseRollout,
  type Rollout,
} from './rollout.js';
import { CRASH_LOOP_RESTARTS, verdict, type ServiceRun } from './verdict.js';

function device(commit: string | null, config: Record<string, string> = {}): TargetDevice {
  return targetDeviceSchema.parse({
    name: 'd',
    config,
    apps: {
      app1: {
        id: 1,
        name: 'app',
        releases:
          commit === null
            ? {}
            : {
                [commit]: {
                  id: commit === 'c1' ? 1 : 2,
                  services: {
                    main: { id: 1, image_id: 1, image: `img:${commit}`, environment: {}, labels: {}, composition: {} },
                  },
                },
              },
      },
    },
  });
}

const refusal = (from: string, to: string): DeviceRollback => ({
  from_commit: from,
  to_commit: to,
  reason: 'service main is crash-looping',
  service: 'main',
  logs: ['boom'],
  at: '2026-12-01T00:00:00.000Z',
});

const app1 = (d: TargetDevice) => d.apps.app1 as TargetDevice['apps'][string];

const rolledBack: Rollout = {
  committed: { app1: committedApp(app1(device('c1')), 'c1') },
  soaking: {},
  refused: { app1: refusal('c2', 'c1') },
};

describe('rollout', () => {
  it('effective target: a refused release is replaced by the committed one', () => {
    const applied = effectiveDevice(device('c2'), rolledBack);
    assert.deepEqual(Object.keys(app1(applied).releases), ['c1']);
    assert.equal(app1(applied).releases.c1?.services.main?.image, 'img:c1');
  });

  it('effective target: any other release is applied as targeted', () => {
    const target = device('c3');
    assert.equal(effectiveDevice(target, rolledBack), target);
    assert.equal(effectiveDevice(device('c2'), EMPTY_ROLLOUT).apps.app1?.releases.c2 !== undefined, true);
  });

  const staleCases: Array<{ name: string; target: TargetDevice | { apps: Record<string, never> }; expect: Rollout }> = [
    { name: 'same target: kept', target: device('c2'), expect: rolledBack },
    {
      name: 'new release: refusal ends, committed kept',
      target: device('c3'),
      expect: { ...rolledBack, refused: {} },
    },
    {
      name: 'app without release: refusal ends',
      target: device(null),
      expect: { ...rolledBack, refused: {} },
    },
    {
      name: 'app left the target: all of it goes',
      target: { ...device('c2'), apps: {} },
      expect: EMPTY_ROLLOUT,
    },
  ];
  for (const c of staleCases)
    it(`forgetStale: ${c.name}`, () => assert.deepEqual(forgetStale(rolledBack, c.target as TargetDevice), c.expect));

  it('forgetStale: a soak ends when its release is no longer the target', () => {
    const soaking: Rollout = { ...EMPTY_ROLLOUT, soaking: { app1: { commit: 'c2', since: 5 } } };
    assert.deepEqual(forgetStale(soaking, device('c2')), soaking);
    assert.deepEqual(forgetStale(soaking, device('c3')).soaking, {});
  });

  it('forgetStale: a release replaced during its soak, not refused, is the one to go back to', () => {
    const app = committedApp(device('c2').apps.app1 as TargetDevice['apps'][string], 'c2').app;
    const soaking: Rollout = {
      ...EMPTY_ROLLOUT,
      committed: {
        app1: { commit: 'c1', app: committedApp(device('c1').apps.app1 as TargetDevice['apps'][string], 'c1').app },
      },
      soaking: { app1: { commit: 'c2', since: 5, app } },
    };
    const next = forgetStale(soaking, device('c3'));
    assert.deepEqual(next.committed, { app1: { commit: 'c2', app } });
    assert.deepEqual(next.soaking, {});
    assert.deepEqual([...committedImages(next)], ['img:c2'], "release 1's images may go, release 2's are kept");
    // A soak stored without its app (before it was kept) ends as before: the committed release stays the way back.
    const old: Rollout = { ...soaking, soaking: { app1: { commit: 'c2', since: 5 } } };
    assert.equal(forgetStale(old, device('c3')).committed.app1?.commit, 'c1');
  });

  it('committed images are kept', () => {
    assert.deepEqual([...committedImages(rolledBack)], ['img:c1']);
  });

  it('parses what it stores, and refuses anything else', () => {
    assert.deepEqual(parseRollout(JSON.parse(JSON.stringify(rolledBack))), rolledBack);
    assert.equal(parseRollout({ committed: 'x' }), undefined);
    assert.equal(parseRollout(undefined), undefined);
  });

  it('soak time from the config var (any prefix), default 5 min, 0 turns watching off', () => {
    assert.equal(soakMsOf(device('c1')), 300_000);
    assert.equal(soakMsOf(device('c1', { BALENA_ROLLBACK_SOAK_SECONDS: '3' })), 3_000);
    assert.equal(soakMsOf(device('c1', { FLOTILLA_ROLLBACK_SOAK_SECONDS: '0.5' })), 500);
    assert.equal(soakMsOf(device('c1', { BALENA_ROLLBACK_SOAK_SECONDS: '0' })), 0);
    assert.equal(soakMsOf(device('c1', { BALENA_ROLLBACK_SOAK_SECONDS: 'soon' })), 300_000);
    assert.equal(soakMsOf(device('c1', { BALENA_ROLLBACK_SOAK_SECONDS: '-1' })), 300_000);
    assert.equal(checkEveryMs(300_000), 2_000);
    assert.equal(checkEveryMs(3_000), 300);
    assert.equal(checkEveryMs(500), 250);
  });
});

describe('verdict()', () => {
  const run = (o: Partial<NonNullable<ServiceRun['run']>>, restart: ServiceRun['restart'] = 'always'): ServiceRun => ({
    service: 'main',
    containerId: 'c',
    restart,
    run: { state: 'running', restartCount: 0, exitCode: 0, startedAt: '', health: undefined, ...o },
  });
  const cases: Array<{ name: string; runs: ServiceRun[]; ended?: boolean; expect: RegExp | undefined }> = [
    { name: 'running, no healthcheck', runs: [run({})], expect: undefined },
    { name: 'healthy', runs: [run({ health: 'healthy' })], ended: true, expect: undefined },
    { name: 'a restart or two', runs: [run({ restartCount: CRASH_LOOP_RESTARTS - 1 })], expect: undefined },
    {
      name: 'crash loop (exits 0)',
      runs: [run({ state: 'restarting', restartCount: CRASH_LOOP_RESTARTS })],
      expect: /crash-looping: restarted 3 times/,
    },
    {
      name: 'repeated non-zero exits',
      runs: [run({ state: 'restarting', restartCount: 4, exitCode: 2 })],
      expect: /exited non-zero \(last exit code 2\) and was restarted 4 times/,
    },
    {
      name: 'exited non-zero for good (restart: no)',
      runs: [run({ state: 'exited', exitCode: 1 }, 'no')],
      expect: /exited with code 1/,
    },
    {
      name: 'exited non-zero, about to be restarted by its policy: not yet',
      runs: [run({ state: 'exited', exitCode: 1, restartCount: 1 }, 'on-failure')],
      expect: undefined,
    },
    { name: 'exited 0 (one-shot)', runs: [run({ state: 'exited', exitCode: 0 })], expect: undefined },
    { name: 'unhealthy', runs: [run({ health: 'unhealthy' })], expect: /unhealthy by its healthcheck/ },
    { name: 'still starting during the soak', runs: [run({ health: 'starting' })], expect: undefined },
    {
      name: 'still starting when the soak ends',
      runs: [run({ health: 'starting' })],
      ended: true,
      expect: /did not become healthy/,
    },
    {
      name: 'restarting, under the crash-loop count, during the soak: not yet',
      runs: [run({ state: 'restarting', restartCount: 1, exitCode: 3 })],
      expect: undefined,
    },
    {
      name: 'still restarting when the soak ends',
      runs: [run({ state: 'restarting', restartCount: 1, exitCode: 3 })],
      ended: true,
      expect: /still restarting when the soak ended \(restarted 1 times\)/,
    },
    {
      name: 'container gone',
      runs: [{ service: 'main', containerId: 'c', restart: 'always', run: undefined }],
      expect: undefined,
    },
  ];
  for (const c of cases)
    it(c.name, () => {
      const failure = verdict(c.runs, c.ended ?? false);
      if (c.expect === undefined) assert.equal(failure, undefined);
      else assert.match(failure?.reason ?? '', c.expect);
    });
});
