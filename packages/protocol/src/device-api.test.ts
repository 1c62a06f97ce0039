import assert from 'node:assert/strict';
import { test } from 'node:test';
import { composeFileSchema } from './compose.js';
import { configJsonSchema } from './config-json.js';
import { configVarKey, toTargetConfigName } from './config-vars.js';
import { registerRequestSchema, stateReportSchema, targetStateSchema } from './device-api.js';
import { path, DEVICE_ROUTES } from './routes.js';

const uuid = 'a'.repeat(32);

test('target state v3 as docs/protocol.md describes it parses, with defaults filled in', () => {
  const state = targetStateSchema.parse({
    [uuid]: {
      name: 'snowy-pine',
      config: { BALENA_SUPERVISOR_POLL_INTERVAL: '900000' },
      apps: {
        appuuid: {
          id: 1,
          name: 'myfleet',
          class: 'fleet',
          is_host: false,
          releases: {
            deadbeef: {
              id: 2,
              services: {
                main: {
                  id: 11,
                  image_id: 22,
                  image: `registry.local/v2/abc@sha256:${'f'.repeat(64)}`,
                  running: true,
                  environment: { FOO: 'bar' },
                  labels: { 'io.balena.update.strategy': 'download-then-kill' },
                  composition: { restart: 'always', depends_on: ['db'], volumes: ['data:/data'], network_mode: 'host' },
                },
              },
              volumes: { data: { driver: 'local', driver_opts: {}, labels: {} } },
              networks: { default: { driver: 'bridge', ipam: { config: [] } } },
            },
          },
        },
      },
    },
  });
  const release = state[uuid]!.apps.appuuid!.releases.deadbeef!;
  assert.equal(release.services.main!.composition.restart, 'always');
  assert.equal(release.networks.default!.ipam.driver, 'default');
});

test('register accepts the Supervisor body (application as string id) and rejects a bad uuid', () => {
  const ok = registerRequestSchema.parse({
    application: '7',
    uuid,
    device_type: 'raspberrypi4-64',
    api_key: 'k'.repeat(32),
    extra: 1,
  });
  assert.equal(ok.application, 7);
  assert.equal(
    registerRequestSchema.safeParse({ application: 7, uuid: 'XYZ', device_type: 'x', api_key: 'k'.repeat(32) }).success,
    false,
  );
});

test('a state report may carry only the fields that changed', () => {
  assert.ok(stateReportSchema.safeParse({ [uuid]: { cpu_usage: 12 } }).success);
  assert.equal(stateReportSchema.safeParse({ [uuid]: { cpu_usage: 'high' } }).success, false);
  assert.equal(
    stateReportSchema.safeParse({ [uuid]: { apps: { a: { releases: { c: { update_status: 'exploded' } } } } } })
      .success,
    false,
  );
});

test('a report may carry a rollback (Flotilla agents), null when it ended, or none at all (balena Supervisor)', () => {
  const rollback = {
    from_commit: 'b'.repeat(32),
    to_commit: 'a'.repeat(32),
    reason: 'service main is crash-looping: restarted 3 times',
    service: 'main',
    logs: ['fatal: no config'],
    at: '2026-12-01T02:15:00.000Z',
  };
  assert.deepEqual(stateReportSchema.parse({ [uuid]: { update_failed: true, rollback } })[uuid]?.rollback, rollback);
  assert.equal(stateReportSchema.parse({ [uuid]: { rollback: null } })[uuid]?.rollback, null);
  assert.equal(stateReportSchema.parse({ [uuid]: { status: 'Idle' } })[uuid]?.rollback, undefined);
  assert.equal(stateReportSchema.safeParse({ [uuid]: { rollback: { ...rollback, logs: 'fatal' } } }).success, false);
  const tooMany = { ...rollback, logs: Array.from({ length: 51 }, (_, i) => `line ${i}`) };
  assert.equal(stateReportSchema.safeParse({ [uuid]: { rollback: tooMany } }).success, false);
});

test('compose: unknown keys are an error at deploy time, not on the device', () => {
  assert.ok(composeFileSchema.safeParse({ services: { main: { build: '.', restart: 'always' } } }).success);
  const bad = composeFileSchema.safeParse({ services: { main: { build: '.', restrat: 'always' } } });
  assert.equal(bad.success, false);
  assert.equal(composeFileSchema.safeParse({ services: {} }).success, false);
});

test('config.json keeps unknown keys and checks known ones', () => {
  const parsed = configJsonSchema.parse({ apiEndpoint: 'http://127.0.0.1:8080', applicationId: '3', custom: { x: 1 } });
  assert.equal(parsed.applicationId, 3);
  assert.deepEqual((parsed as Record<string, unknown>).custom, { x: 1 });
  assert.equal(configJsonSchema.safeParse({ apiEndpoint: 'ftp://x' }).success, false);
  assert.equal(configJsonSchema.safeParse({ listenPort: 70000 }).success, false);
});

test('config var prefixes are interchangeable', () => {
  assert.equal(configVarKey('FLOTILLA_SUPERVISOR_DELTA'), 'SUPERVISOR_DELTA');
  assert.equal(toTargetConfigName('RESIN_HOST_CONFIG_gpu_mem'), 'BALENA_HOST_CONFIG_gpu_mem');
});

test('route paths are filled and encoded', () => {
  assert.equal(path(DEVICE_ROUTES.targetState.path, { uuid }), `/device/v3/${uuid}/state`);
  assert.equal(path(DEVICE_ROUTES.keyExchange.path, { id: 'a/b' }), '/api-key/device/a%2Fb/device-key');
  assert.throws(() => path(DEVICE_ROUTES.targetState.path, {}));
});
