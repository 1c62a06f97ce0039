import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type EnvInput,
  composeRecord,
  effectiveConfig,
  effectiveEnvironment,
  mergeConfig,
  mergeEnvironment,
} from './effective-variables.js';

const compose = ['A=compose', 'B=compose', 'C=compose', 'D=compose', 'E=compose', 'BROKEN'];
const input: EnvInput = {
  fleetEnv: [
    { name: 'B', value: 'fleet', service: null },
    { name: 'C', value: 'fleet', service: null },
    { name: 'D', value: 'fleet-web', service: 'web' },
    { name: 'X', value: 'fleet-other', service: 'other' },
  ],
  deviceEnv: [
    { name: 'C', value: 'device', service: null },
    { name: 'D', value: 'device', service: null },
    { name: 'E', value: 'device-web', service: 'web' },
  ],
};

test('environment precedence: compose < fleet < device < fleet-service < device-service', () => {
  assert.deepEqual(mergeEnvironment('web', compose, input), {
    A: 'compose',
    B: 'fleet',
    C: 'device',
    D: 'fleet-web',
    E: 'device-web',
  });
  assert.deepEqual(mergeEnvironment('other', compose, input), {
    A: 'compose',
    B: 'fleet',
    C: 'device',
    D: 'device',
    E: 'compose',
    X: 'fleet-other',
  });
});

test('the explanation names each winner, its layer, and what it overrode, least specific first', () => {
  const shown = effectiveEnvironment('web', compose, input).map((v) => [
    v.name,
    `${v.source}=${v.value}`,
    v.overridden.map((o) => `${o.source}=${o.value}`).join(' < '),
  ]);
  assert.deepEqual(shown, [
    ['A', 'release=compose', ''],
    ['B', 'fleet=fleet', 'release=compose'],
    ['C', 'device=device', 'release=compose < fleet=fleet'],
    // A device-wide value does not beat a fleet value for this service: the order, not the owner, decides.
    ['D', 'fleet-service=fleet-web', 'release=compose < device=device'],
    ['E', 'device-service=device-web', 'release=compose'],
  ]);
});

test('the explanation and the merge agree on every service, whatever the input', () => {
  const names = ['A', 'B', 'C'];
  const services = [null, 'web', 'db'];
  const sources = ['fleet', 'device'] as const;
  // Every combination of: per owner and scope, no row, one row, or two rows of one name (the later wins).
  let seed = 7;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let round = 0; round < 300; round++) {
    const rows: Record<(typeof sources)[number], { name: string; value: string; service: string | null }[]> = {
      fleet: [],
      device: [],
    };
    for (let i = random(8); i > 0; i--) {
      const source = sources[random(2)] as (typeof sources)[number];
      rows[source].push({
        name: names[random(3)] as string,
        value: `v${round}.${i}`,
        service: services[random(3)] ?? null,
      });
    }
    const env: EnvInput = { fleetEnv: rows.fleet, deviceEnv: rows.device };
    const composed = random(2) === 0 ? undefined : { A: 'c', C: 1, D: null };
    for (const service of ['web', 'db', 'cache']) {
      const explained = effectiveEnvironment(service, composed, env);
      const merged = mergeEnvironment(service, composed, env);
      assert.deepEqual(Object.fromEntries(explained.map((v) => [v.name, v.value])), merged, JSON.stringify(env));
      for (const v of explained) assert.ok(!v.overridden.some((o) => o.source === v.source), 'one value per layer');
    }
  }
});

test('what every service shares: only the fleet and device layers without a service', () => {
  const shared = effectiveEnvironment(null, compose, input);
  assert.deepEqual(
    shared.map((v) => [v.name, v.source, v.value]),
    [
      ['B', 'fleet', 'fleet'],
      ['C', 'device', 'device'],
      ['D', 'device', 'device'],
    ],
  );
});

test('a name written twice in one layer: the later row is that layer', () => {
  const env: EnvInput = {
    fleetEnv: [
      { name: 'A', value: 'first', service: null },
      { name: 'A', value: 'second', service: null },
    ],
    deviceEnv: [],
  };
  assert.deepEqual(mergeEnvironment('s', undefined, env), { A: 'second' });
  assert.deepEqual(effectiveEnvironment('s', undefined, env), [
    { name: 'A', value: 'second', source: 'fleet', overridden: [] },
  ]);
});

test('compose environment maps drop nulls and stringify scalars; list items need a name and "="', () => {
  assert.deepEqual(composeRecord({ A: 1, B: true, C: null, D: 'x' }), { A: '1', B: 'true', D: 'x' });
  assert.deepEqual(composeRecord(['A=1=2', '=x', 'B=', 'C']), { A: '1=2', B: '' });
  assert.deepEqual(composeRecord(undefined), {});
});

test('config: the three spellings are one setting, sent as BALENA_; the device beats the fleet', () => {
  const config = {
    fleetConfig: [
      { name: 'FLOTILLA_SUPERVISOR_DELTA', value: '1' },
      { name: 'RESIN_HOST_CONFIG_gpu_mem', value: '16' },
    ],
    deviceConfig: [{ name: 'BALENA_SUPERVISOR_DELTA', value: '0' }],
  };
  assert.deepEqual(mergeConfig(config), { BALENA_SUPERVISOR_DELTA: '0', BALENA_HOST_CONFIG_gpu_mem: '16' });
  assert.deepEqual(effectiveConfig(config), [
    { name: 'RESIN_HOST_CONFIG_gpu_mem', value: '16', source: 'fleet', overridden: [] },
    {
      name: 'BALENA_SUPERVISOR_DELTA',
      value: '0',
      source: 'device',
      overridden: [{ name: 'FLOTILLA_SUPERVISOR_DELTA', value: '1', source: 'fleet' }],
    },
  ]);
});
