import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RolloutPolicy } from '@flotilla/protocol';
import { batchesInWords, STAGED_DEFAULTS, type StagedFields, stagedInstall } from './staged-os-install.js';

const policy: RolloutPolicy = {
  name: 'careful',
  plan: {
    batches: [5, 50, 100],
    tag: { key: 'canary', value: 'true' },
    soakSeconds: 60,
    offlineTimeoutSeconds: 600,
    successThreshold: 90,
    failureThreshold: 5,
  },
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
};

test('a staged OS install: the body sent, or the field that is wrong', () => {
  const f = (fields: Partial<StagedFields>) => ({ ...STAGED_DEFAULTS, ...fields });
  const cases: [string, 'batches' | 'policy', Partial<StagedFields>, unknown][] = [
    ['the defaults', 'batches', {}, { version: '2.0.0', batches: [10, 100], soakSeconds: 300 }],
    [
      'a tag and a soak',
      'batches',
      { batches: '25, 100%', tag: 'canary=true', soak: '0' },
      { version: '2.0.0', batches: [25, 100], tag: { key: 'canary', value: 'true' }, soakSeconds: 0 },
    ],
    ['not a percentage', 'batches', { batches: '10%,lots' }, ['batches', /invalid rollout batch "lots"/]],
    ['not ending at 100%', 'batches', { batches: '10,50' }, ['batches', /last batch must be 100%/]],
    ['not increasing', 'batches', { batches: '50,10,100' }, ['batches', /must increase/]],
    ['a tag without a value sign', 'batches', { tag: 'canary' }, ['tag', /give key=value/]],
    ['a soak in words', 'batches', { soak: '5m' }, ['soak', /whole seconds/]],
    ['a soak past a week', 'batches', { soak: String(8 * 86_400) }, ['soak', /.+/]],
    ['a policy, taken whole', 'policy', { policy: 'careful' }, { version: '2.0.0', ...policy.plan }],
    ['no policy chosen', 'policy', { policy: '' }, ['policy', /rollout policies/]],
  ];
  for (const [label, mode, fields, expected] of cases) {
    const got = stagedInstall('2.0.0', mode, f(fields), [policy]);
    if (Array.isArray(expected)) {
      assert.equal(got.ok, false, label);
      if (!got.ok) {
        assert.equal(got.field, expected[0], label);
        assert.match(got.message, expected[1] as RegExp, label);
      }
    } else assert.deepEqual(got, { ok: true, body: expected }, label);
  }
});

test('the batches in words, a tag first', () => {
  assert.equal(batchesInWords({ version: '2', batches: [10, 100] }), '10%, 100%');
  assert.equal(batchesInWords({ version: '2', ...policy.plan }), 'canary=true, 5%, 50%, 100%');
});
