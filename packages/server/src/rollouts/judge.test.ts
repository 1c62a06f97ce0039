import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  assignBatches,
  decideBatch,
  judgeDevice,
  judgeOsDevice,
  notRunningWhy,
  osNotRunningWhy,
  type DeviceFacts,
  type OsFacts,
  type ReleaseFacts,
} from './judge.js';

const ids = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

test('batches: cumulative percentages of the devices, the tagged ones first, the last batch takes the rest', () => {
  const cases: Array<[string, number, number[], number[], { key: string; value: string } | undefined, number[][]]> = [
    ['5% of 100 then 25% then all', 100, [5, 25, 100], [], undefined, [ids(5), ids(25).slice(5), ids(100).slice(25)]],
    ['a small fleet still gets a first batch of one', 3, [5, 100], [], undefined, [[1], [2, 3]]],
    [
      'tagged first, percentages of the others',
      5,
      [50, 100],
      [2, 4],
      { key: 'canary', value: 'true' },
      [[2, 4], [1, 3], [5]],
    ],
    ['a tag no device carries is an empty first batch', 2, [100], [], { key: 'canary', value: 'true' }, [[], [1, 2]]],
    ['no devices', 0, [10, 100], [], undefined, [[], []]],
  ];
  for (const [what, n, batches, tagged, tag, expected] of cases) {
    const { batchOf, labels } = assignBatches(ids(n), new Set(tagged), tag ? { batches, tag } : { batches });
    const got = labels.map((_, b) => [...batchOf].filter(([, x]) => x === b).map(([id]) => id));
    assert.deepEqual(got, expected, what);
  }
  assert.deepEqual(assignBatches([], new Set(), { batches: [5, 100], tag: { key: 'k', value: 'v' } }).labels, [
    'k=v',
    '5%',
    '100%',
  ]);
});

const release: ReleaseFacts = {
  commit: 'abc1234',
  services: [
    { name: 'web', healthcheck: true },
    { name: 'db', healthcheck: false },
  ],
};
const running = (extra: Partial<DeviceFacts> = {}, services?: Record<string, unknown>): DeviceFacts => ({
  last_seen_at: new Date(0).toISOString(),
  running_release: 'abc1234',
  update_failed: 0,
  services_json: JSON.stringify(
    services ?? {
      web: { status: 'Running', releaseCommit: 'abc1234', health: 'healthy' },
      db: { status: 'Running', releaseCommit: 'abc1234' },
    },
  ),
  ...extra,
});

test('running the release: every service running, healthy where it has a healthcheck and reports health', () => {
  const cases: Array<[string, DeviceFacts, string | null]> = [
    ['all running and healthy', running(), null],
    [
      'no health reported: judged by Running',
      running(
        {},
        { web: { status: 'Running', releaseCommit: 'abc1234' }, db: { status: 'Running', releaseCommit: 'abc1234' } },
      ),
      null,
    ],
    [
      'unhealthy',
      running(
        {},
        {
          web: { status: 'Running', releaseCommit: 'abc1234', health: 'unhealthy' },
          db: { status: 'Running', releaseCommit: 'abc1234' },
        },
      ),
      'service web is unhealthy',
    ],
    [
      'starting',
      running(
        {},
        {
          web: { status: 'Running', releaseCommit: 'abc1234', health: 'starting' },
          db: { status: 'Running', releaseCommit: 'abc1234' },
        },
      ),
      'service web is starting',
    ],
    [
      'a service exited',
      running(
        {},
        { web: { status: 'Running', releaseCommit: 'abc1234' }, db: { status: 'Exited', releaseCommit: 'abc1234' } },
      ),
      'service db is Exited',
    ],
    [
      'a service of another release',
      running(
        {},
        { web: { status: 'Running', releaseCommit: 'abc1234' }, db: { status: 'Running', releaseCommit: 'old' } },
      ),
      'service db is not there',
    ],
    ['another release', running({ running_release: 'old' }), 'it does not run the release yet'],
    ['update failed', running({ update_failed: 1 }), 'its update failed'],
  ];
  for (const [what, device, why] of cases) assert.equal(notRunningWhy(device, release), why, what);
});

test('a device: soaked → succeeded; silent past the offline timeout → offline; final states stay', () => {
  const at = Date.parse('2026-01-01T00:10:00Z');
  const ctx = { now: at, soakMs: 60_000, offlineTimeoutMs: 120_000, openedAt: at - 300_000 };
  const iso = (ms: number) => new Date(ms).toISOString();
  const pending = { state: 'pending' as const, healthy_since: null };
  const cases: Array<
    [string, Parameters<typeof judgeDevice>[0], DeviceFacts, { state: string; healthy_since: string | null }]
  > = [
    ['first seen healthy: the soak starts', pending, running(), { state: 'pending', healthy_since: iso(at) }],
    [
      'healthy for less than the soak',
      { state: 'pending', healthy_since: iso(at - 59_000) },
      running(),
      { state: 'pending', healthy_since: iso(at - 59_000) },
    ],
    [
      'healthy for the soak',
      { state: 'pending', healthy_since: iso(at - 60_000) },
      running(),
      { state: 'succeeded', healthy_since: iso(at - 60_000) },
    ],
    [
      'a break resets the soak',
      { state: 'pending', healthy_since: iso(at - 59_000) },
      running({ last_seen_at: iso(at), running_release: 'old' }),
      { state: 'pending', healthy_since: null },
    ],
    [
      'not seen for the timeout',
      pending,
      running({ last_seen_at: iso(at - 120_000), running_release: 'old' }),
      { state: 'offline', healthy_since: null },
    ],
    [
      'seen lately, still updating',
      pending,
      running({ last_seen_at: iso(at - 1_000), running_release: 'old' }),
      { state: 'pending', healthy_since: null },
    ],
    [
      // Its update is downloaded and waits for its maintenance window, past the offline timeout: it polls and
      // reports, so it is seen, and stays pending (never failed, never offline) until its window applies it.
      'waiting for its update window',
      pending,
      running({ last_seen_at: iso(at - 1_000), running_release: 'old' }),
      { state: 'pending', healthy_since: null },
    ],
    [
      'offline and back, healthy',
      { state: 'offline', healthy_since: null },
      running(),
      { state: 'pending', healthy_since: iso(at) },
    ],
    [
      'failed stays failed',
      { state: 'failed', healthy_since: null },
      running(),
      { state: 'failed', healthy_since: null },
    ],
  ];
  for (const [what, current, device, expected] of cases)
    assert.deepEqual(judgeDevice(current, device, release, ctx), expected, what);
  // The batch opened less than the timeout ago: a device never seen is not offline yet.
  const justOpened = { ...ctx, openedAt: at - 1_000 };
  const silent = running({ last_seen_at: null, running_release: null });
  assert.equal(judgeDevice(pending, silent, release, justOpened).state, 'pending');
  // A device found offline in batch 1 stays offline when batch 2 opens (the context's clock is batch 2's).
  assert.equal(judgeDevice({ state: 'offline', healthy_since: null }, silent, release, justOpened).state, 'offline');
  assert.equal(
    judgeDevice(
      { state: 'offline', healthy_since: null },
      running({ last_seen_at: iso(at - 1_000), running_release: 'old' }),
      release,
      justOpened,
    ).state,
    'pending',
    'seen again: judged again',
  );
});

test('a batch: pause past the failure threshold, open the next at the success threshold, else wait', () => {
  const t = { successThreshold: 100, failureThreshold: 10 };
  const f = (o: Partial<Parameters<typeof decideBatch>[1]>) => ({
    devices: 10,
    pending: 0,
    succeeded: 0,
    failed: 0,
    offline: 0,
    excused: 0,
    ...o,
  });
  const cases: Array<[string, Parameters<typeof decideBatch>[1], typeof t, string]> = [
    ['all succeeded', f({ succeeded: 10 }), t, 'open-next'],
    ['one pending', f({ succeeded: 9, pending: 1 }), t, 'wait'],
    ['offline ones do not count', f({ succeeded: 8, offline: 2 }), t, 'open-next'],
    ['all offline', f({ offline: 10 }), t, 'open-next'],
    ['10% failed is not more than 10%', f({ succeeded: 9, failed: 1 }), t, 'wait'],
    ['20% failed', f({ succeeded: 8, failed: 2 }), t, 'pause'],
    ['90% success threshold', f({ succeeded: 9, failed: 1 }), { ...t, successThreshold: 90 }, 'open-next'],
    ['excused failures do not count', f({ succeeded: 8, excused: 2 }), t, 'open-next'],
    ['an empty batch', f({ devices: 0 }), t, 'open-next'],
  ];
  for (const [what, figures, thresholds, action] of cases)
    assert.equal(decideBatch(1, figures, thresholds).action, action, what);
  assert.deepEqual(decideBatch(1, f({ failed: 3, pending: 7 }), t), {
    action: 'pause',
    reason: 'batch 2: 3 of 10 device(s) failed, more than 10%',
  });
});

test('an OS rollout device: committed or flashed with the version runs it; rolled back or failed fails it', () => {
  const at = Date.parse('2026-01-01T00:10:00Z');
  const ctx = { now: at, soakMs: 60_000, offlineTimeoutMs: 120_000, openedAt: at - 300_000 };
  const iso = (ms: number) => new Date(ms).toISOString();
  const pending = { state: 'pending' as const, healthy_since: null };
  const update = (phase: string, version = '2.0.0', error: string | null = null) =>
    JSON.stringify({ phase, version, progress: null, error_code: error ? 'TRIAL_UNHEALTHY' : null, error });
  const os = (o: Partial<OsFacts> = {}): OsFacts => ({
    last_seen_at: iso(at - 1_000),
    os_version: 'Flotilla OS 1.0.0',
    os_update_json: null,
    ...o,
  });
  const cases: Array<[string, Parameters<typeof judgeOsDevice>[0], OsFacts, { state: string; reason?: string }]> = [
    ['nothing reported yet', pending, os(), { state: 'pending' }],
    ['writing the slot', pending, os({ os_update_json: update('writing') }), { state: 'pending' }],
    ['in its trial boot', pending, os({ os_update_json: update('trial') }), { state: 'pending' }],
    ['committed: the soak starts', pending, os({ os_update_json: update('committed') }), { state: 'pending' }],
    [
      'committed for the soak',
      { state: 'pending', healthy_since: iso(at - 60_000) },
      os({ os_update_json: update('committed') }),
      { state: 'succeeded' },
    ],
    [
      'flashed with it (no update of it reported), with no soak asked: see below',
      pending,
      os({ os_version: 'Flotilla OS 2.0.0' }),
      { state: 'pending' },
    ],
    [
      'rolled back from its trial',
      pending,
      os({ os_update_json: update('rolled-back', '2.0.0', 'the engine did not answer') }),
      { state: 'failed', reason: 'OS 2.0.0 rolled-back: the engine did not answer (TRIAL_UNHEALTHY)' },
    ],
    [
      'the update failed',
      pending,
      os({ os_update_json: update('failed') }),
      { state: 'failed', reason: 'OS 2.0.0 failed' },
    ],
    [
      "a rollback of another version is not this rollout's failure",
      pending,
      os({ os_update_json: update('rolled-back', '1.5.0') }),
      { state: 'pending' },
    ],
    ['silent past the offline timeout', pending, os({ last_seen_at: iso(at - 120_000) }), { state: 'offline' }],
    ['succeeded stays', { state: 'succeeded', healthy_since: iso(at) }, os(), { state: 'succeeded' }],
  ];
  for (const [what, current, device, expected] of cases) {
    const got = judgeOsDevice(current, device, '2.0.0', ctx);
    assert.equal(got.state, expected.state, what);
    assert.equal(got.reason, expected.reason, what);
  }
  assert.equal(
    judgeOsDevice(pending, os({ os_version: 'Flotilla OS 2.0.0' }), '2.0.0', { ...ctx, soakMs: 0 }).state,
    'succeeded',
  );
  const whys: Array<[string, OsFacts, string | null]> = [
    ['committed', os({ os_update_json: update('committed') }), null],
    ['PRETTY_NAME ends with it', os({ os_version: 'balenaOS 2.0.0' }), null],
    ['the bare version', os({ os_version: '2.0.0' }), null],
    ['a longer version is another', os({ os_version: 'Flotilla OS 2.0.0-rc1' }), 'it does not run OS 2.0.0 yet'],
    ['armed', os({ os_update_json: update('armed') }), 'its update to OS 2.0.0 is armed'],
    ['an unreadable report', os({ os_update_json: '{' }), 'it does not run OS 2.0.0 yet'],
  ];
  for (const [what, device, why] of whys) assert.equal(osNotRunningWhy(device, '2.0.0'), why, what);
});
