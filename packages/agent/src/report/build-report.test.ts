import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildAppsReport, diffReport, mergeReport } from './build-report.js';
import type { TargetModel } from '../reconcile/state.js';

describe('diffReport()', () => {
  it('first report is sent whole', () => {
    assert.deepEqual(diffReport(undefined, { status: 'Idle', cpu_usage: 3 }), { status: 'Idle', cpu_usage: 3 });
  });
  it('only changed keys; small metric changes are not worth a report', () => {
    const last = { status: 'Idle', cpu_usage: 3, memory_usage: 1000, apps: {} };
    assert.deepEqual(diffReport(last, { status: 'Idle', cpu_usage: 10, memory_usage: 1010, apps: {} }), {});
    assert.deepEqual(diffReport(last, { status: 'Updating', cpu_usage: 50, memory_usage: 1010, apps: {} }), {
      status: 'Updating',
      cpu_usage: 50,
    });
  });
  it('merge keeps what the control plane has', () => {
    assert.deepEqual(mergeReport({ a: 1, status: 'Idle' } as never, { status: 'Updating' }), {
      a: 1,
      status: 'Updating',
    });
  });
});

describe('buildAppsReport()', () => {
  const target: TargetModel = {
    apps: [
      {
        appId: 1,
        appUuid: 'u1',
        name: 'a',
        commit: 'c2',
        releaseId: 2,
        volumes: [],
        networks: [],
        services: [
          {
            appId: 1,
            appUuid: 'u1',
            serviceName: 'web',
            serviceId: 1,
            imageId: 1,
            releaseId: 2,
            commit: 'c2',
            image: 'img:2',
            running: true,
            strategy: 'download-then-kill',
            handoverTimeoutMs: 1,
            dependsOn: [],
            restart: 'always',
            containerName: 'x',
            configHash: 'h2',
            spec: {},
            networks: [],
            extraNetworks: [],
            volumes: [],
          },
        ],
      },
    ],
  };
  it('old release running while the new downloads: both reported, release_uuid the old one', () => {
    const apps = buildAppsReport({
      current: {
        containers: [
          {
            id: 'c',
            name: 'web',
            appId: 1,
            appUuid: 'u1',
            serviceName: 'web',
            releaseCommit: 'c1',
            imageId: 'sha256:old',
            configHash: 'h1',
            state: 'running',
            createdAt: 0,
            networks: [],
          },
        ],
        volumes: [],
        networks: [],
        images: [],
        knownImages: [],
      },
      target,
      statuses: new Map([[1, 'downloading']]),
      progress: new Map([['img:2', 42]]),
      failed: false,
    });
    assert.equal(apps.u1?.release_uuid, 'c1');
    assert.deepEqual(apps.u1?.releases.c2, {
      update_status: 'downloading',
      services: { web: { image: 'img:2', status: 'Downloading', download_progress: 42 } },
    });
    assert.equal(apps.u1?.releases.c1?.services.web?.status, 'Running');
  });
  it("a target service's container reports its healthcheck verdict; one without a healthcheck reports none", () => {
    const running = (health?: 'starting' | 'healthy' | 'unhealthy') => ({
      id: 'n',
      name: 'web',
      appId: 1,
      appUuid: 'u1',
      serviceName: 'web',
      releaseCommit: 'c2',
      imageId: 'sha256:new',
      configHash: 'h2',
      state: 'running',
      createdAt: 0,
      networks: [],
      ...(health ? { health } : {}),
    });
    const report = (health?: 'starting' | 'healthy' | 'unhealthy') =>
      buildAppsReport({
        current: {
          containers: [running(health)],
          volumes: [],
          networks: [],
          images: [{ id: 'sha256:new', repoTags: ['img:2'], repoDigests: [] }],
          knownImages: [],
        },
        target,
        statuses: new Map(),
        progress: new Map(),
        failed: false,
      }).u1?.releases.c2?.services.web;
    assert.equal(report('starting')?.health, 'starting');
    assert.equal(report('healthy')?.health, 'healthy');
    const without = report();
    assert.equal(without?.status, 'Running');
    assert.equal(without && 'health' in without, false);
  });
});
