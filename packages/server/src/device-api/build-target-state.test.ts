import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildTargetState, mergeEnvironment } from './build-target-state.js';

test('environment precedence: compose < fleet < device < fleet-service < device-service', () => {
  const env = mergeEnvironment('web', ['A=compose', 'B=compose', 'C=compose', 'D=compose', 'E=compose', 'BROKEN'], {
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
  });
  assert.deepEqual(env, { A: 'compose', B: 'fleet', C: 'device', D: 'fleet-web', E: 'device-web' });
});

test('config names arrive with the BALENA_ prefix; device beats fleet', () => {
  const state = buildTargetState({
    device: { uuid: 'u', name: 'n' },
    fleet: { id: 1, uuid: 'f', name: 'fleet' },
    release: null,
    fleetEnv: [],
    deviceEnv: [],
    fleetConfig: [
      { name: 'FLOTILLA_SUPERVISOR_DELTA', value: '1' },
      { name: 'RESIN_HOST_CONFIG_gpu_mem', value: '16' },
    ],
    deviceConfig: [{ name: 'BALENA_SUPERVISOR_DELTA', value: '0' }],
  });
  assert.deepEqual(state.u?.config, { BALENA_SUPERVISOR_DELTA: '0', BALENA_HOST_CONFIG_gpu_mem: '16' });
  assert.deepEqual(state.u?.apps.f?.releases, {});
});

test('compose environment maps drop nulls and stringify scalars', () => {
  assert.deepEqual(mergeEnvironment('s', { A: 1, B: true, C: null, D: 'x' }, { fleetEnv: [], deviceEnv: [] }), {
    A: '1',
    B: 'true',
    D: 'x',
  });
});
