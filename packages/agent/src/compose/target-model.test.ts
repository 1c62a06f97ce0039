import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { targetDeviceSchema, type TargetDevice } from '@flotilla/protocol';
import { buildTargetModel, stableStringify, type ModelContext } from './target-model.js';
import { parsePorts, durationToNs } from './ports.js';

const ctx: ModelContext = {
  namespace: 'ns-',
  deviceUuid: 'a'.repeat(32),
  deviceType: 'generic-amd64',
  apiEndpoint: 'https://api.example',
  deviceApiKey: 'device-key-0123456789',
  dockerSocket: '/var/run/docker.sock',
  supervisorApi: { port: 48484, key: 'sup-key' },
  serviceLockDir: (appId, name) => `/data/services/ns-${appId}/${name}`,
};

function device(
  o: {
    commit?: string;
    releaseId?: number;
    env?: Record<string, string>;
    labels?: Record<string, string>;
    composition?: Record<string, unknown>;
  } = {},
): TargetDevice {
  return targetDeviceSchema.parse({
    name: 'd',
    apps: {
      appuuid: {
        id: 5,
        name: 'app',
        releases: {
          [o.commit ?? 'c1']: {
            id: o.releaseId ?? 1,
            services: {
              main: {
                id: 1,
                image_id: 1,
                image: 'reg/img@sha256:1',
                environment: o.env ?? { A: '1' },
                labels: o.labels ?? {},
                composition: o.composition ?? {},
              },
            },
            volumes: { data: {} },
          },
        },
      },
    },
  });
}

const main = (d: TargetDevice) => {
  const svc = buildTargetModel(d, ctx).apps[0]?.services[0];
  assert.ok(svc);
  return svc;
};

describe('buildTargetModel()', () => {
  it('hash ignores the release (new release, same config → same hash, no restart)', () => {
    assert.equal(main(device()).configHash, main(device({ commit: 'c2', releaseId: 2 })).configHash);
  });

  it('hash changes with environment, labels and composition', () => {
    const base = main(device()).configHash;
    assert.notEqual(main(device({ env: { A: '2' } })).configHash, base);
    assert.notEqual(main(device({ labels: { x: 'y' } })).configHash, base);
    assert.notEqual(main(device({ composition: { privileged: true } })).configHash, base);
  });

  it('hash does not depend on key order', () => {
    assert.equal(
      main(device({ env: { A: '1', B: '2' } })).configHash,
      main(device({ env: { B: '2', A: '1' } })).configHash,
    );
    assert.equal(stableStringify({ b: 1, a: [{ d: 1, c: 2 }] }), '{"a":[{"c":2,"d":1}],"b":1}');
  });

  it('names volumes and networks <namespace><appId>_<name>, default network and alias', () => {
    const app = buildTargetModel(device({ composition: { volumes: ['data:/data'] } }), ctx).apps[0];
    assert.deepEqual(
      app?.volumes.map((v) => v.name),
      ['ns-5_data'],
    );
    assert.deepEqual(
      app?.networks.map((n) => n.name),
      ['ns-5_default'],
    );
    const svc = app?.services[0];
    assert.equal(svc?.spec.HostConfig?.NetworkMode, 'ns-5_default');
    assert.deepEqual(svc?.spec.NetworkingConfig?.EndpointsConfig?.['ns-5_default']?.Aliases, ['main']);
    assert.ok(svc?.spec.HostConfig?.Binds?.includes('ns-5_data:/data'));
    assert.ok(svc?.spec.HostConfig?.Binds?.includes('/data/services/ns-5/main:/tmp/balena'));
    assert.ok(svc?.spec.HostConfig?.Binds?.includes('/data/services/ns-5/main:/tmp/resin'));
  });

  it('refuses arbitrary host binds', () => {
    const svc = main(device({ composition: { volumes: ['/etc:/host-etc'] } }));
    assert.ok(!svc.spec.HostConfig?.Binds?.some((b) => b.startsWith('/etc')));
  });

  it('network_mode host: no app network, supervisor API on loopback', () => {
    const svc = main(
      device({ composition: { network_mode: 'host' }, labels: { 'io.balena.features.supervisor-api': '1' } }),
    );
    assert.equal(svc.spec.HostConfig?.NetworkMode, 'host');
    assert.deepEqual(svc.networks, []);
    assert.ok(svc.spec.Env?.includes('BALENA_SUPERVISOR_ADDRESS=http://127.0.0.1:48484'));
    assert.ok(svc.spec.Env?.includes('BALENA_SUPERVISOR_API_KEY=sup-key'));
  });

  it('supervisor-api with the local API disabled: no address pointing at a port nobody listens on', () => {
    const labelled = device({ labels: { 'io.balena.features.supervisor-api': '1' } });
    const svc = buildTargetModel(labelled, { ...ctx, supervisorApi: null }).apps[0]!.services[0]!;
    assert.ok(!svc.spec.Env?.some((e) => e.includes('SUPERVISOR')), String(svc.spec.Env));
  });

  it('feature labels mount host things', () => {
    const labels = Object.fromEntries(
      ['balena-socket', 'sysfs', 'procfs', 'dbus', 'kernel-modules', 'firmware', 'journal-logs'].map((f) => [
        `io.balena.features.${f}`,
        '1',
      ]),
    );
    const binds = main(device({ labels })).spec.HostConfig?.Binds ?? [];
    for (const expected of [
      '/var/run/docker.sock:/var/run/balena-engine.sock',
      '/sys:/sys',
      '/proc:/proc',
      '/run/dbus:/host/run/dbus',
      '/lib/modules:/lib/modules',
      '/lib/firmware:/lib/firmware',
      '/var/log/journal:/var/log/journal:ro',
    ]) {
      assert.ok(binds.includes(expected), expected);
    }
  });

  it('restart default always; privileged, devices, caps, healthcheck passed through', () => {
    const svc = main(
      device({
        composition: {
          privileged: true,
          devices: ['/dev/ttyUSB0:/dev/ttyUSB0'],
          cap_add: ['NET_ADMIN'],
          cap_drop: ['MKNOD'],
          healthcheck: { test: 'true', interval: '1m30s' },
        },
      }),
    );
    assert.equal(svc.spec.HostConfig?.RestartPolicy?.Name, 'always');
    assert.equal(svc.spec.HostConfig?.Privileged, true);
    assert.deepEqual(svc.spec.HostConfig?.Devices, [
      { PathOnHost: '/dev/ttyUSB0', PathInContainer: '/dev/ttyUSB0', CgroupPermissions: 'rwm' },
    ]);
    assert.deepEqual(svc.spec.HostConfig?.CapAdd, ['NET_ADMIN']);
    assert.deepEqual(svc.spec.HostConfig?.CapDrop, ['MKNOD']);
    assert.deepEqual(svc.spec.Healthcheck, { Test: ['CMD-SHELL', 'true'], Interval: 90e9 });
  });

  it('strategy and hand-over timeout from labels', () => {
    const svc = main(
      device({ labels: { 'io.balena.update.strategy': 'hand-over', 'io.balena.update.handover-timeout': '5000' } }),
    );
    assert.equal(svc.strategy, 'hand-over');
    assert.equal(svc.handoverTimeoutMs, 5000);
    assert.equal(main(device({ labels: { 'io.balena.update.strategy': 'bogus' } })).strategy, 'download-then-kill');
  });

  it('exclusive resources: fixed host ports, devices, host networking; not ephemeral ports', () => {
    const exclusive = (composition: Record<string, unknown>) => main(device({ composition })).exclusive;
    assert.equal(
      exclusive({ ports: ['8080:80', '127.0.0.1:53:53/udp'] }),
      'host port 8080->80/tcp, 127.0.0.1:53->53/udp',
    );
    assert.equal(exclusive({ ports: ['80', 81], expose: [90] }), undefined);
    assert.equal(exclusive({ devices: ['/dev/ttyUSB0:/dev/ttyUSB0'] }), 'device /dev/ttyUSB0');
    assert.equal(exclusive({ network_mode: 'host' }), 'host networking');
    assert.equal(exclusive({}), undefined);
  });
});

describe('ports', () => {
  const cases: Array<[string | number, string, Array<{ HostIp: string; HostPort: string }> | undefined]> = [
    [80, '80/tcp', undefined],
    ['8080:80', '80/tcp', [{ HostIp: '', HostPort: '8080' }]],
    ['127.0.0.1:53:53/udp', '53/udp', [{ HostIp: '127.0.0.1', HostPort: '53' }]],
  ];
  for (const [input, key, bindings] of cases) {
    it(String(input), () => {
      const m = parsePorts([input]);
      assert.ok(key in m.exposed);
      assert.deepEqual(m.bindings[key], bindings);
    });
  }
  it('ranges', () => {
    const m = parsePorts(['8000-8001:9000-9001']);
    assert.deepEqual(m.bindings['9001/tcp'], [{ HostIp: '', HostPort: '8001' }]);
  });
  it('durations', () => {
    assert.equal(durationToNs('1m30s'), 90e9);
    assert.equal(durationToNs('500ms'), 500e6);
  });
});
