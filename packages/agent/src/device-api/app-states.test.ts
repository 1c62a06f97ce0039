import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceView } from '../reconcile/observed.js';
import type { CurrentContainer, TargetModel, TargetService } from '../reconcile/state.js';
import { appStates } from './app-states.js';

const web = {
  appId: 1,
  appUuid: 'u1',
  serviceName: 'web',
  serviceId: 11,
  imageId: 22,
  releaseId: 2,
  commit: 'c2',
  image: 'img:2',
  running: true,
  configHash: 'h2',
} as TargetService;
const target: TargetModel = {
  apps: [
    { appId: 1, appUuid: 'u1', name: 'app', commit: 'c2', releaseId: 2, services: [web], volumes: [], networks: [] },
  ],
};
const container = (state: string): CurrentContainer => ({
  id: 'cid',
  name: 'web_2',
  appId: 1,
  appUuid: 'u1',
  serviceName: 'web',
  releaseCommit: 'c2',
  imageId: 'sha256:2',
  configHash: 'h2',
  state,
  createdAt: 0,
  networks: [],
});
const view = (containers: CurrentContainer[], progress: Array<[string, number]> = []): DeviceView => ({
  current: {
    containers,
    volumes: [],
    networks: [],
    images: [{ id: 'sha256:2', repoTags: ['img:2'], repoDigests: [] }],
    knownImages: [],
  },
  target,
  statuses: new Map([[1, 'done']]),
  progress: new Map(progress),
  failed: false,
});

describe('appStates()', () => {
  const cases: Array<{ name: string; view: DeviceView; held: boolean; status: string; containerId: string | null }> = [
    { name: 'running', view: view([container('running')]), held: false, status: 'Running', containerId: 'cid' },
    { name: 'exited', view: view([container('exited')]), held: false, status: 'Exited', containerId: 'cid' },
    {
      name: 'held and down: Stopped',
      view: view([container('exited')]),
      held: true,
      status: 'Stopped',
      containerId: 'cid',
    },
    {
      name: 'held but up again',
      view: view([container('running')]),
      held: true,
      status: 'Running',
      containerId: 'cid',
    },
    { name: 'no container, image here', view: view([]), held: false, status: 'Downloaded', containerId: null },
  ];
  for (const c of cases)
    it(c.name, () => {
      const [app] = appStates(c.view, () => c.held);
      assert.equal(app?.commit, c.status === 'Running' ? 'c2' : null);
      assert.equal(app?.services[0]?.status, c.status);
      assert.equal(app?.services[0]?.containerId, c.containerId);
    });

  it('nothing before a target; download progress per service image', () => {
    assert.deepEqual(
      appStates({ ...view([]), target: null }, () => false),
      [],
    );
    assert.equal(appStates(view([], [['img:2', 40]]), () => false)[0]?.services[0]?.downloadProgress, 40);
  });
});
