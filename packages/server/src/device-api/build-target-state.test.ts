import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildTargetState } from './build-target-state.js';

// The merge order itself is protocol's (effective-variables.test.ts); these check that target state applies it.

test("each service's environment: compose < fleet < device < fleet-service < device-service", () => {
  const state = buildTargetState({
    device: { uuid: 'u', name: 'n' },
    fleet: { id: 1, uuid: 'f', name: 'fleet' },
    release: {
      id: 3,
      commit: 'c0ffee',
      composition: {
        services: {
          web: { image: 'web', environment: ['A=compose', 'B=compose', 'C=compose', 'D=compose', 'E=compose'] },
          db: { image: 'db', environment: { A: 1, N: null } },
        },
      },
      services: [
        { id: 1, name: 'web', image: null },
        { id: 2, name: 'db', image: null },
      ],
    },
    fleetEnv: [
      { name: 'B', value: 'fleet', service: null },
      { name: 'C', value: 'fleet', service: null },
      { name: 'D', value: 'fleet-web', service: 'web' },
    ],
    deviceEnv: [
      { name: 'C', value: 'device', service: null },
      { name: 'D', value: 'device', service: null },
      { name: 'E', value: 'device-web', service: 'web' },
    ],
    fleetConfig: [],
    deviceConfig: [],
  });
  const services = state.u?.apps.f?.releases.c0ffee?.services;
  assert.deepEqual(services?.web?.environment, {
    A: 'compose',
    B: 'fleet',
    C: 'device',
    D: 'fleet-web',
    E: 'device-web',
  });
  assert.deepEqual(services?.db?.environment, { A: '1', B: 'fleet', C: 'device', D: 'device' });
});

test('config: no default is invented for a setting nobody set (the Supervisor reports its own first)', () => {
  const input = {
    device: { uuid: 'u', name: 'n' },
    fleet: { id: 1, uuid: 'f', name: 'fleet' },
    release: null,
    fleetEnv: [],
    deviceEnv: [],
    fleetConfig: [],
    deviceConfig: [],
  };
  assert.deepEqual(buildTargetState(input).u?.config, {});
  // What the Supervisor posts at provisioning (config.json's 10 s poll interval) comes back as the device's value.
  const reported = buildTargetState({
    ...input,
    fleetConfig: [{ name: 'BALENA_SUPERVISOR_PERSISTENT_LOGGING', value: '1' }],
    deviceConfig: [{ name: 'RESIN_SUPERVISOR_POLL_INTERVAL', value: '10000' }],
  });
  assert.deepEqual(reported.u?.config, {
    BALENA_SUPERVISOR_PERSISTENT_LOGGING: '1',
    BALENA_SUPERVISOR_POLL_INTERVAL: '10000',
  });
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
