import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { UpdateStatus } from '@flotilla/protocol';
import { Observed, type DeviceView } from '../reconcile/observed.js';
import type { TargetModel, TargetService } from '../reconcile/state.js';
import { buildDeviceReport, reportable, updateState, type DeviceAbout, type UpdateState } from './device-report.js';
import type { Metrics } from './metrics.js';

describe('updateState()', () => {
  const cases: Array<{
    name: string;
    statuses: UpdateStatus[];
    progress?: number[];
    failed?: boolean;
    windowWait?: { opensAt: number | null };
    expect: Partial<UpdateState>;
  }> = [
    { name: 'no pass yet', statuses: [], expect: { status: 'Idle', updatePending: false, updateDownloaded: false } },
    { name: 'converged', statuses: ['done', 'done'], expect: { status: 'Idle', updatePending: false } },
    {
      name: 'downloading, mean progress',
      statuses: ['downloading', 'done'],
      progress: [10, 41],
      expect: { status: 'Updating', updatePending: true, updateDownloaded: false, downloadProgress: 26 },
    },
    {
      name: 'downloaded, waiting (update lock)',
      statuses: ['downloaded', 'done'],
      expect: { status: 'Updating', updatePending: true, updateDownloaded: true, downloadProgress: null },
    },
    { name: 'applying', statuses: ['applying changes'], expect: { status: 'Updating', updateDownloaded: false } },
    {
      name: 'downloaded, waiting for the update window',
      statuses: ['downloaded', 'done'],
      windowWait: { opensAt: 1_000 },
      expect: { status: 'Waiting for update window', updatePending: true, updateDownloaded: true },
    },
    {
      name: 'still downloading ahead of the window: updating',
      statuses: ['downloading'],
      progress: [40],
      windowWait: { opensAt: 1_000 },
      expect: { status: 'Updating', downloadProgress: 40 },
    },
    {
      name: 'failed terminally wins',
      statuses: ['applying changes'],
      failed: true,
      expect: { status: 'Update failed', updateFailed: true, updatePending: true },
    },
  ];
  for (const c of cases)
    it(c.name, () => {
      const state = updateState({
        statuses: new Map(c.statuses.map((s, i) => [i, s])),
        progress: new Map((c.progress ?? []).map((p, i) => [`img:${i}`, p])),
        failed: c.failed ?? false,
        windowWait: c.windowWait ?? null,
      });
      for (const [key, value] of Object.entries(c.expect)) assert.equal(state[key as keyof UpdateState], value, key);
    });
});

describe('buildDeviceReport()', () => {
  const target: TargetModel = {
    apps: [{ appId: 1, appUuid: 'u1', name: 'a', commit: 'c2', releaseId: 2, services: [], volumes: [], networks: [] }],
  };
  const view: DeviceView = {
    current: { containers: [], volumes: [], networks: [], images: [], knownImages: [] },
    target,
    statuses: new Map([[1, 'done']]),
    progress: new Map(),
    failed: false,
  };
  const about: DeviceAbout = {
    api_port: 48484,
    api_secret: 'secret',
    os_version: 'linux v20',
    os_variant: 'prod',
    supervisor_version: '0.1.0',
  };
  const metrics = { cpu_usage: 3, memory_usage: 100, memory_total: 1000 } as Metrics;

  it('is not reportable before the engine was read or without a target', () => {
    assert.equal(reportable({ ...view, current: undefined }), false);
    assert.equal(reportable({ ...view, target: null }), false);
    assert.equal(reportable(view), true);
  });

  it('carries status, identity, metrics and apps; rejected releases beside the running one', () => {
    if (!reportable(view)) throw new Error('unreachable');
    const report = buildDeviceReport(view, { u1: ['c3'], u9: ['c9'] }, about, metrics);
    assert.equal(report.status, 'Idle');
    assert.equal(report.update_pending, false);
    assert.equal(report.update_failed, false);
    assert.equal(report.api_port, 48484);
    assert.equal(report.cpu_usage, 3);
    assert.equal(report.apps?.u1?.releases.c2?.update_status, 'done');
    assert.deepEqual(report.apps?.u1?.releases.c3, { update_status: 'rejected', services: {} });
    assert.deepEqual(report.apps?.u9, {
      release_uuid: null,
      releases: { c9: { update_status: 'rejected', services: {} } },
    });
    const failed = buildDeviceReport({ ...view, failed: true }, {}, about, metrics);
    assert.equal(failed.status, 'Update failed');
    assert.equal(failed.apps?.u1?.releases.c2?.update_status, 'aborted');
    assert.equal(report.rollback, null);
  });

  it('waiting for the update window: the status says so, and when it opens', () => {
    const waiting = { ...view, statuses: new Map([[1, 'downloaded' as const]]), windowWait: { opensAt: 86_400_000 } };
    if (!reportable(waiting)) throw new Error('unreachable');
    const report = buildDeviceReport(waiting, {}, about, metrics);
    assert.equal(report.status, 'Waiting for update window');
    assert.equal(report.update_window_opens_at, '1970-01-02T00:00:00.000Z');
    if (!reportable(view)) throw new Error('unreachable');
    assert.equal(buildDeviceReport(view, {}, about, metrics).update_window_opens_at, null, 'no wait: null');
  });

  it('a rollback: update failed, the refused release aborted beside the one the device went back to', () => {
    const rollback = {
      from_commit: 'c3',
      to_commit: 'c2',
      reason: 'service main is crash-looping: restarted 3 times',
      service: 'main',
      logs: ['fatal: no config'],
      at: '2026-12-01T00:00:00.000Z',
    };
    const rolledBack = { ...view, rollback };
    if (!reportable(rolledBack)) throw new Error('unreachable');
    const report = buildDeviceReport(rolledBack, {}, about, metrics);
    assert.equal(report.status, 'Update failed');
    assert.equal(report.update_failed, true);
    assert.deepEqual(report.rollback, rollback);
    assert.equal(report.apps?.u1?.releases.c2?.update_status, 'done');
    assert.deepEqual(report.apps?.u1?.releases.c3, { update_status: 'aborted', services: {} });
  });
});

describe('a release the reconciler has not planned yet', () => {
  // Found by the agent tests against the real server, which serves the fleet's app before its first release: the
  // last round planned the app without a release ('done', nothing to do), and the next report joins that status,
  // kept per app id, to the new release's commit. For up to one planning round the device says it runs a release
  // it has not even pulled, and the server (device-api/report.ts) recorded it as the running release.
  it('is not reported done on the strength of the previous target', () => {
    const observed = new Observed();
    const empty = { containers: [], volumes: [], networks: [], images: [], knownImages: [] };
    const app = { appId: 1, appUuid: 'u1', name: 'a', volumes: [], networks: [] };
    observed.planned(new Map([[1, 'done']]), empty, {
      apps: [{ ...app, commit: null, releaseId: null, services: [] }],
    });
    const withRelease: TargetModel = {
      apps: [
        {
          ...app,
          commit: 'c1',
          releaseId: 1,
          services: [{ serviceName: 'main', image: 'registry.test/fleet/main@sha256:00' } as TargetService],
        },
      ],
    };
    const view = observed.view(withRelease);
    if (!reportable(view)) throw new Error('unreachable');
    const report = buildDeviceReport(
      view,
      {},
      { api_port: null, api_secret: 's', os_version: 'x', os_variant: 'prod', supervisor_version: '0.1.0' },
      {} as Metrics,
    );
    assert.equal(report.apps?.u1?.releases.c1?.update_status, 'applying changes');
    assert.equal(report.status, 'Updating');
    // Once a round has planned the release itself, its own status is what is reported.
    observed.planned(new Map([[1, 'done']]), empty, withRelease);
    const planned = observed.view(withRelease);
    if (!reportable(planned)) throw new Error('unreachable');
    assert.equal(planned.statuses.get(1), 'done');
  });
});
