import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { UpdateStrategy } from '@flotilla/protocol';
import { WINDOW_RECHECK_MS, plan } from './plan.js';
import {
  NO_REQUESTS,
  type CurrentContainer,
  type CurrentState,
  type LocalImage,
  type PlanContext,
  type TargetApp,
  type TargetModel,
  type TargetService,
} from './state.js';
import type { Step } from './steps.js';

// ------------------------------------------------------------------------------------------------------ builders
const APP = 7;

function service(name: string, o: Partial<TargetService> = {}): TargetService {
  const releaseId = o.releaseId ?? 2;
  const hash = o.configHash ?? `hash-${name}-${releaseId}`;
  return {
    appId: APP,
    appUuid: 'app-uuid',
    serviceName: name,
    serviceId: 1,
    imageId: 1,
    releaseId,
    commit: `commit${releaseId}`,
    image: `img/${name}:r${releaseId}`,
    running: true,
    strategy: 'download-then-kill',
    handoverTimeoutMs: 60_000,
    dependsOn: [],
    restart: 'always',
    containerName: `${name}_${releaseId}`,
    configHash: hash,
    spec: {},
    networks: [`${APP}_default`],
    extraNetworks: [],
    volumes: [],
    ...o,
  };
}

function app(services: TargetService[], o: Partial<TargetApp> = {}): TargetApp {
  return {
    appId: APP,
    appUuid: 'app-uuid',
    name: 'app',
    commit: 'commit2',
    releaseId: 2,
    services,
    volumes: [],
    networks: [{ appId: APP, name: `${APP}_default`, configHash: 'net', spec: { Name: `${APP}_default` } }],
    ...o,
  };
}

/** A container running `svc` as planned (same hash, same image), with overrides. */
function container(svc: TargetService, o: Partial<CurrentContainer> = {}): CurrentContainer {
  return {
    id: `c-${svc.serviceName}-${svc.releaseId}`,
    name: svc.containerName,
    appId: svc.appId,
    appUuid: svc.appUuid,
    serviceName: svc.serviceName,
    releaseCommit: svc.commit,
    imageId: `id:${svc.image}`,
    configHash: svc.configHash,
    state: 'running',
    createdAt: 1_000,
    networks: svc.networks,
    ...o,
  };
}

const image = (ref: string): LocalImage => ({ id: `id:${ref}`, repoTags: [ref], repoDigests: [] });

function world(o: Partial<CurrentState> = {}): CurrentState {
  return {
    containers: [],
    volumes: [],
    networks: [{ name: `${APP}_default`, appId: APP, configHash: 'net' }],
    images: [],
    knownImages: [],
    ...o,
  };
}

const ctx = (o: Partial<PlanContext> = {}): PlanContext => ({
  now: 10_000,
  lockedApps: new Set(),
  overrideLock: false,
  handoverComplete: new Set(),
  heldStopped: new Set(),
  agentLocks: new Set(),
  requests: NO_REQUESTS,
  ...o,
});

function short(s: Step): string {
  switch (s.action) {
    case 'fetch':
    case 'removeImage':
      return `${s.action} ${s.image}`;
    case 'createNetwork':
      return `createNetwork ${s.network.name}`;
    case 'createVolume':
      return `createVolume ${s.volume.name}`;
    case 'removeNetwork':
    case 'removeVolume':
      return `${s.action} ${s.name}`;
    case 'createContainer':
      return `createContainer ${s.service.containerName}`;
    case 'startContainer':
    case 'stopContainer':
    case 'killContainer':
      return `${s.action} ${s.containerId}`;
    case 'updateMetadata':
      return `updateMetadata ${s.containerId} ${s.name}`;
    case 'takeLock':
    case 'releaseLock':
      return `${s.action} ${s.appId} ${s.services.join(',')}`;
    case 'wait':
      return s.lock ? 'wait lock' : s.window ? 'wait window' : 'wait';
  }
}

// --------------------------------------------------------------------------------------------------------- cases
const web1 = service('web', { releaseId: 1 });
const web2 = service('web', { releaseId: 2 });
const withStrategy = (s: UpdateStrategy): TargetService => service('web', { releaseId: 2, strategy: s });

interface Case {
  name: string;
  current: CurrentState;
  target: TargetModel;
  ctx?: Partial<PlanContext>;
  /** Steps once the agent holds the update locks of every service with a container (see the runner below). */
  expect: string[];
}

const cases: Case[] = [
  { name: 'empty world, empty target: nothing', current: world({ networks: [] }), target: { apps: [] }, expect: [] },
  {
    name: 'first install: network, volume and fetch in one pass',
    current: world({ networks: [] }),
    target: {
      apps: [
        app([service('web', { volumes: ['7_data'] })], {
          volumes: [{ appId: APP, name: '7_data', spec: { Name: '7_data' } }],
        }),
      ],
    },
    expect: ['createNetwork 7_default', 'createVolume 7_data', 'fetch img/web:r2'],
  },
  {
    name: 'image present but volume missing: create volume, not the container yet',
    current: world({ images: [image('img/web:r2')] }),
    target: {
      apps: [
        app([service('web', { volumes: ['7_data'] })], {
          volumes: [{ appId: APP, name: '7_data', spec: { Name: '7_data' } }],
        }),
      ],
    },
    expect: ['createVolume 7_data'],
  },
  {
    name: 'image present: create container',
    current: world({ images: [image(web2.image)] }),
    target: { apps: [app([web2])] },
    expect: ['createContainer web_2'],
  },
  {
    name: 'created container: start it',
    current: world({ images: [image(web2.image)], containers: [container(web2, { state: 'created' })] }),
    target: { apps: [app([web2])] },
    expect: ['startContainer c-web-2'],
  },
  {
    name: 'converged: no step',
    current: world({ images: [image(web2.image)], containers: [container(web2)] }),
    target: { apps: [app([web2])] },
    expect: [],
  },
  {
    name: 'same config in a new release: rename only, no restart',
    current: world({ images: [image(web2.image)], containers: [container(web2, { name: 'web_1' })] }),
    target: { apps: [app([web2])] },
    expect: ['updateMetadata c-web-2 web_2'],
  },
  {
    name: 'exited with restart "no": left alone',
    current: world({
      images: [image('img/job:r2')],
      containers: [container(service('job', { restart: 'no' }), { state: 'exited' })],
    }),
    target: { apps: [app([service('job', { restart: 'no' })])] },
    expect: [],
  },
  {
    name: 'exited with restart always: started again',
    current: world({ images: [image(web2.image)], containers: [container(web2, { state: 'exited' })] }),
    target: { apps: [app([web2])] },
    expect: ['startContainer c-web-2'],
  },
  {
    name: 'depends_on: db not running yet, web waits',
    current: world({
      images: [image(web2.image), image('img/db:r2')],
      containers: [container(web2, { state: 'created' }), container(service('db'), { state: 'created' })],
    }),
    target: { apps: [app([service('web', { dependsOn: ['db'] }), service('db')])] },
    expect: ['startContainer c-db-2', 'wait'],
  },
  {
    name: 'depends_on: db running, web starts',
    current: world({
      images: [image(web2.image), image('img/db:r2')],
      containers: [container(web2, { state: 'created' }), container(service('db'))],
    }),
    target: { apps: [app([service('web', { dependsOn: ['db'] }), service('db')])] },
    expect: ['startContainer c-web-2'],
  },
  // download-then-kill
  {
    name: 'download-then-kill: fetch while old runs',
    current: world({ images: [image(web1.image)], containers: [container(web1)] }),
    target: { apps: [app([web2])] },
    expect: ['fetch img/web:r2'],
  },
  {
    name: 'download-then-kill: no kill until every image of the app is present',
    current: world({ images: [image(web1.image), image(web2.image)], containers: [container(web1)] }),
    target: { apps: [app([web2, service('db')])] },
    expect: ['fetch img/db:r2'],
  },
  {
    name: 'download-then-kill: images ready, kill old',
    current: world({ images: [image(web1.image), image(web2.image)], containers: [container(web1)] }),
    target: { apps: [app([web2])] },
    expect: ['killContainer c-web-1'],
  },
  {
    name: 'old gone: create new',
    current: world({ images: [image(web1.image), image(web2.image)], knownImages: [web1.image] }),
    target: { apps: [app([web2])] },
    expect: ['createContainer web_2'],
  },
  {
    name: 'converged: unused known image cleaned up last',
    current: world({
      images: [image(web1.image), image(web2.image)],
      containers: [container(web2)],
      knownImages: [web1.image, web2.image],
    }),
    target: { apps: [app([web2])] },
    expect: ['removeImage img/web:r1'],
  },
  {
    name: 'image cleanup never removes an image a container uses',
    current: world({ images: [image(web1.image)], containers: [container(web1)], knownImages: [web1.image] }),
    target: { apps: [app([service('web', { releaseId: 1, running: true })])] },
    expect: [],
  },
  // kill-then-download / delete-then-download
  {
    name: 'kill-then-download: kill first',
    current: world({ images: [image(web1.image)], containers: [container(web1)], knownImages: [web1.image] }),
    target: { apps: [app([withStrategy('kill-then-download')])] },
    expect: ['killContainer c-web-1'],
  },
  {
    name: 'kill-then-download: then fetch, old image kept',
    current: world({ images: [image(web1.image)], knownImages: [web1.image] }),
    target: { apps: [app([withStrategy('kill-then-download')])] },
    expect: ['fetch img/web:r2'],
  },
  {
    name: 'delete-then-download: old image removed before the fetch',
    current: world({ images: [image(web1.image)], knownImages: [web1.image] }),
    target: { apps: [app([withStrategy('delete-then-download')])] },
    expect: ['removeImage img/web:r1'],
  },
  {
    name: 'delete-then-download: old image gone, fetch',
    current: world({ images: [], knownImages: [] }),
    target: { apps: [app([withStrategy('delete-then-download')])] },
    expect: ['fetch img/web:r2'],
  },
  // hand-over
  {
    name: 'hand-over: new container created while old runs',
    current: world({ images: [image(web1.image), image(web2.image)], containers: [container(web1)] }),
    target: { apps: [app([withStrategy('hand-over')])] },
    expect: ['createContainer web_2'],
  },
  {
    name: 'hand-over: new started while old runs',
    current: world({
      images: [image(web1.image), image(web2.image)],
      containers: [container(web1), container(withStrategy('hand-over'), { state: 'created' })],
    }),
    target: { apps: [app([withStrategy('hand-over')])] },
    expect: ['startContainer c-web-2'],
  },
  {
    name: 'hand-over: waits for handover-complete',
    current: world({
      images: [image(web1.image), image(web2.image)],
      containers: [container(web1), container(withStrategy('hand-over'), { createdAt: 5_000 })],
    }),
    target: { apps: [app([withStrategy('hand-over')])] },
    expect: ['wait'],
  },
  {
    name: 'hand-over: complete file kills old',
    current: world({
      images: [image(web1.image), image(web2.image)],
      containers: [container(web1), container(withStrategy('hand-over'), { createdAt: 5_000 })],
    }),
    target: { apps: [app([withStrategy('hand-over')])] },
    ctx: { handoverComplete: new Set(['7/web']) },
    expect: ['killContainer c-web-1'],
  },
  {
    name: 'hand-over: timeout kills old',
    current: world({
      images: [image(web1.image), image(web2.image)],
      containers: [
        container(web1),
        container(service('web', { strategy: 'hand-over', handoverTimeoutMs: 1_000 }), { createdAt: 5_000 }),
      ],
    }),
    target: { apps: [app([service('web', { strategy: 'hand-over', handoverTimeoutMs: 1_000 })])] },
    expect: ['killContainer c-web-1'],
  },
  {
    name: 'hand-over with an exclusive resource: new container still created while old runs',
    current: world({ images: [image(web1.image), image(web2.image)], containers: [container(web1)] }),
    target: { apps: [app([service('web', { strategy: 'hand-over', exclusive: 'host port 8080->80/tcp' })])] },
    expect: ['createContainer web_2'],
  },
  {
    name: 'hand-over with an exclusive resource: old killed before the new one starts',
    current: world({
      images: [image(web1.image), image(web2.image)],
      containers: [
        container(web1),
        container(service('web', { strategy: 'hand-over', exclusive: 'host port 8080->80/tcp' }), {
          state: 'created',
        }),
      ],
    }),
    target: { apps: [app([service('web', { strategy: 'hand-over', exclusive: 'host port 8080->80/tcp' })])] },
    expect: ['killContainer c-web-1'],
  },
  {
    name: 'hand-over with an exclusive resource: new started once old is gone',
    current: world({
      images: [image(web1.image), image(web2.image)],
      containers: [
        container(service('web', { strategy: 'hand-over', exclusive: 'host networking' }), { state: 'created' }),
      ],
    }),
    target: { apps: [app([service('web', { strategy: 'hand-over', exclusive: 'host networking' })])] },
    expect: ['startContainer c-web-2'],
  },
  // locks
  {
    name: 'update lock: no kill, wait instead',
    current: world({ images: [image(web1.image), image(web2.image)], containers: [container(web1)] }),
    target: { apps: [app([web2])] },
    ctx: { lockedApps: new Set([APP]) },
    expect: ['wait lock'],
  },
  {
    name: 'update lock overridden: kill',
    current: world({ images: [image(web1.image), image(web2.image)], containers: [container(web1)] }),
    target: { apps: [app([web2])] },
    ctx: { lockedApps: new Set([APP]), overrideLock: true },
    expect: ['killContainer c-web-1'],
  },
  {
    name: 'update lock does not block a first install',
    current: world({ images: [image(web2.image)] }),
    target: { apps: [app([web2])] },
    ctx: { lockedApps: new Set([APP]) },
    expect: ['createContainer web_2'],
  },
  // networks
  {
    name: 'changed network definition: containers on it go first',
    current: world({
      images: [image(web2.image)],
      containers: [container(web2)],
      networks: [{ name: '7_default', appId: APP, configHash: 'old' }],
    }),
    target: { apps: [app([web2])] },
    expect: ['killContainer c-web-2'],
  },
  {
    name: 'changed network definition: then the network is removed (and re-created next round)',
    current: world({ images: [image(web2.image)], networks: [{ name: '7_default', appId: APP, configHash: 'old' }] }),
    target: { apps: [app([web2])] },
    expect: ['removeNetwork 7_default'],
  },
  {
    name: 'changed network definition under an update lock: nothing killed',
    current: world({
      images: [image(web2.image)],
      containers: [container(web2)],
      networks: [{ name: '7_default', appId: APP, configHash: 'old' }],
    }),
    target: { apps: [app([web2])] },
    ctx: { lockedApps: new Set([APP]) },
    expect: ['wait lock'],
  },
  {
    name: 'container missing one of its networks (crash before connect): replaced',
    current: world({
      images: [image('img/web:r2')],
      containers: [
        container(service('web', { networks: ['7_default', '7_back'] }), { networks: ['7_default'], state: 'created' }),
      ],
      networks: [
        { name: '7_default', appId: APP, configHash: 'net' },
        { name: '7_back', appId: APP, configHash: 'net' },
      ],
    }),
    target: {
      apps: [
        app([service('web', { networks: ['7_default', '7_back'] })], {
          networks: [
            { appId: APP, name: '7_default', configHash: 'net', spec: { Name: '7_default' } },
            { appId: APP, name: '7_back', configHash: 'net', spec: { Name: '7_back' } },
          ],
        }),
      ],
    },
    expect: ['killContainer c-web-2'],
  },
  // env change, duplicates, removals
  {
    name: 'env change of one service recreates only that service',
    current: world({
      images: [image(web2.image), image('img/db:r2')],
      containers: [container(web2), container(service('db'))],
    }),
    target: { apps: [app([service('web', { configHash: 'new-hash' }), service('db')])] },
    expect: ['killContainer c-web-2'],
  },
  {
    name: 'duplicate containers after a crash: keep the running one',
    current: world({
      images: [image(web2.image)],
      containers: [container(web2), container(web2, { id: 'dup', state: 'created' })],
    }),
    target: { apps: [app([web2])] },
    expect: ['killContainer dup'],
  },
  {
    name: 'service removed from release: killed',
    current: world({
      images: [image(web2.image), image('img/db:r2')],
      containers: [container(web2), container(service('db'))],
    }),
    target: { apps: [app([web2])] },
    expect: ['killContainer c-db-2'],
  },
  {
    name: 'running false: stopped',
    current: world({ images: [image(web2.image)], containers: [container(web2)] }),
    target: { apps: [app([service('web', { running: false })])] },
    expect: ['stopContainer c-web-2'],
  },
  {
    name: 'app left target: containers first',
    current: world({ containers: [container(web2)], volumes: [{ name: '7_data', appId: APP }] }),
    target: { apps: [] },
    expect: ['killContainer c-web-2'],
  },
  {
    name: 'app left target: then its networks and volumes',
    current: world({ volumes: [{ name: '7_data', appId: APP }] }),
    target: { apps: [] },
    expect: ['removeNetwork 7_default', 'removeVolume 7_data'],
  },
  {
    name: 'volumes kept across releases while the app stays',
    current: world({
      images: [image(web2.image)],
      containers: [container(web2)],
      volumes: [{ name: '7_old', appId: APP }],
    }),
    target: { apps: [app([web2])] },
    expect: [],
  },
  {
    name: 'app without release: services go, volumes stay',
    current: world({ containers: [container(web2)], volumes: [{ name: '7_data', appId: APP }] }),
    target: { apps: [app([], { commit: null, releaseId: null, networks: [] })] },
    expect: ['killContainer c-web-2'],
  },
  // ------------------------------------------------------------------------------- services stopped on request
  {
    name: 'held stopped, exited (restart always): not started again',
    current: world({ images: [image(web2.image)], containers: [container(web2, { state: 'exited' })] }),
    target: { apps: [app([web2])] },
    ctx: { heldStopped: new Set([`${APP}/web`]) },
    expect: [],
  },
  {
    name: 'held stopped, created: not started',
    current: world({ images: [image(web2.image)], containers: [container(web2, { state: 'created' })] }),
    target: { apps: [app([web2])] },
    ctx: { heldStopped: new Set([`${APP}/web`]) },
    expect: [],
  },
  {
    name: 'held stopped but running (engine restarted it): stopped again',
    current: world({ images: [image(web2.image)], containers: [container(web2)] }),
    target: { apps: [app([web2])] },
    ctx: { heldStopped: new Set([`${APP}/web`]) },
    expect: ['stopContainer c-web-2'],
  },
  {
    name: 'held stopped and running under an update lock: wait, no stop',
    current: world({ images: [image(web2.image)], containers: [container(web2)] }),
    target: { apps: [app([web2])] },
    ctx: { heldStopped: new Set([`${APP}/web`]), lockedApps: new Set([APP]) },
    expect: ['wait lock'],
  },
  {
    name: 'hold released (not in the set): exited container started again',
    current: world({ images: [image(web2.image)], containers: [container(web2, { state: 'exited' })] }),
    target: { apps: [app([web2])] },
    ctx: { heldStopped: new Set([`${APP}/other`]) },
    expect: ['startContainer c-web-2'],
  },
  {
    name: 'held stopped: only that service; its sibling is still started',
    current: world({
      images: [image(web2.image), image('img/db:r2')],
      containers: [container(web2, { state: 'exited' }), container(service('db'), { state: 'exited' })],
    }),
    target: { apps: [app([web2, service('db')])] },
    ctx: { heldStopped: new Set([`${APP}/web`]) },
    expect: ['startContainer c-db-2'],
  },
  {
    name: 'a held-stopped dependency does not block its dependent from starting',
    current: world({
      images: [image(web2.image), image('img/db:r2')],
      containers: [
        container(service('web', { dependsOn: ['db'] }), { state: 'created' }),
        container(service('db'), { state: 'exited' }),
      ],
    }),
    target: { apps: [app([service('web', { dependsOn: ['db'] }), service('db')])] },
    ctx: { heldStopped: new Set([`${APP}/db`]) },
    expect: ['startContainer c-web-2'],
  },
  {
    name: 'held stopped with a new release (different config): the new container is created, not started',
    current: world({ images: [image(web2.image)], containers: [] }),
    target: { apps: [app([web2])] },
    ctx: { heldStopped: new Set([`${APP}/web`]) },
    expect: ['createContainer web_2'],
  },
];

// ------------------------------------------------- update locks taken by the agent, and device action requests
const db2 = service('db');
const webOnDb = service('web', { dependsOn: ['db'] });
const dataVolume = { appId: APP, name: '7_data', spec: { Name: '7_data' } };
const requests = (o: Partial<PlanContext['requests']>): PlanContext['requests'] => ({ ...NO_REQUESTS, ...o });

/** Run with exactly the context given (no lock taken unless `agentLocks` says so); the whole plan is compared. */
const lockCases: Case[] = [
  {
    name: 'a kill needs the lock first: the agent takes it in every service folder of the app',
    current: world({
      images: [image(web1.image), image(web2.image), image(db2.image)],
      containers: [container(web1), container(db2)],
    }),
    target: { apps: [app([web2, db2])] },
    expect: ['takeLock 7 db,web'],
  },
  {
    name: 'lock taken: the kill follows, the lock is kept',
    current: world({ images: [image(web1.image), image(web2.image)], containers: [container(web1)] }),
    target: { apps: [app([web2])] },
    ctx: { agentLocks: new Set(['7/web']) },
    expect: ['killContainer c-web-1'],
  },
  {
    name: 'lock taken in part (crash while taking): taken again before any kill',
    current: world({
      images: [image(web1.image), image(web2.image), image(db2.image)],
      containers: [container(web1), container(db2)],
    }),
    target: { apps: [app([web2, db2])] },
    ctx: { agentLocks: new Set(['7/web']) },
    expect: ['takeLock 7 db,web'],
  },
  {
    name: 'nothing left to kill: the lock is released while the new container is created',
    current: world({ images: [image(web2.image)] }),
    target: { apps: [app([web2])] },
    ctx: { agentLocks: new Set(['7/web']) },
    expect: ['createContainer web_2', 'releaseLock 7 web'],
  },
  {
    name: 'converged with a lock left by a crash: released',
    current: world({ images: [image(web2.image)], containers: [container(web2)] }),
    target: { apps: [app([web2])] },
    ctx: { agentLocks: new Set(['7/web']) },
    expect: ['releaseLock 7 web'],
  },
  {
    name: "a service's lock wins over the agent's: wait, and let go of ours",
    current: world({ images: [image(web1.image), image(web2.image)], containers: [container(web1)] }),
    target: { apps: [app([web2])] },
    ctx: { agentLocks: new Set(['7/web']), lockedApps: new Set([APP]) },
    expect: ['wait lock', 'releaseLock 7 web'],
  },
  {
    name: 'locks overridden (config var, forced update): kill without taking the lock',
    current: world({ images: [image(web1.image), image(web2.image)], containers: [container(web1)] }),
    target: { apps: [app([web2])] },
    ctx: { overrideLock: true },
    expect: ['killContainer c-web-1'],
  },
  {
    name: 'a first install takes no lock',
    current: world({ images: [image(web2.image)] }),
    target: { apps: [app([web2])] },
    expect: ['createContainer web_2'],
  },
  {
    name: 'stop on request: the lock first',
    current: world({ images: [image(web2.image)], containers: [container(web2)] }),
    target: { apps: [app([web2])] },
    ctx: { heldStopped: new Set(['7/web']) },
    expect: ['takeLock 7 web'],
  },
  {
    name: 'app removed from target: the lock first',
    current: world({ networks: [], containers: [container(service('old', { appId: 8 }))] }),
    target: { apps: [] },
    expect: ['takeLock 8 old'],
  },
  // purge
  {
    name: 'purge: the lock, then the containers',
    current: world({
      images: [image(web2.image)],
      containers: [container(web2)],
      volumes: [{ name: '7_data', appId: APP }],
    }),
    target: { apps: [app([web2], { volumes: [dataVolume] })] },
    ctx: { requests: requests({ purge: new Set([APP]) }) },
    expect: ['takeLock 7 web'],
  },
  {
    name: 'purge: containers go (stopped ones too) under the lock; volumes wait for them',
    current: world({
      images: [image(web2.image), image(db2.image)],
      containers: [container(web2), container(db2, { state: 'exited' })],
      volumes: [{ name: '7_data', appId: APP }],
    }),
    target: { apps: [app([web2, db2], { volumes: [dataVolume] })] },
    ctx: { requests: requests({ purge: new Set([APP]) }), agentLocks: new Set(['7/db', '7/web']) },
    expect: ['killContainer c-web-2', 'killContainer c-db-2'],
  },
  {
    name: 'purge: then the volumes go, the networks stay, and the lock is released',
    current: world({ images: [image(web2.image)], volumes: [{ name: '7_data', appId: APP }] }),
    target: { apps: [app([web2], { volumes: [dataVolume] })] },
    ctx: { requests: requests({ purge: new Set([APP]) }), agentLocks: new Set(['7/web']) },
    expect: ['removeVolume 7_data', 'releaseLock 7 web'],
  },
  {
    name: 'purge under a service lock: nothing removed',
    current: world({
      images: [image(web2.image)],
      containers: [container(web2)],
      volumes: [{ name: '7_data', appId: APP }],
    }),
    target: { apps: [app([web2], { volumes: [dataVolume] })] },
    ctx: { requests: requests({ purge: new Set([APP]) }), lockedApps: new Set([APP]) },
    expect: ['wait lock'],
  },
  {
    name: 'forced purge under a service lock: containers go without the lock',
    current: world({
      images: [image(web2.image)],
      containers: [container(web2)],
      volumes: [{ name: '7_data', appId: APP }],
    }),
    target: { apps: [app([web2], { volumes: [dataVolume] })] },
    ctx: { requests: requests({ purge: new Set([APP]), force: new Set([APP]) }), lockedApps: new Set([APP]) },
    expect: ['killContainer c-web-2'],
  },
  // restart: stop, then start
  {
    name: 'restart, first half: dependents stop first',
    current: world({
      images: [image(webOnDb.image), image(db2.image)],
      containers: [container(webOnDb), container(db2)],
    }),
    target: { apps: [app([webOnDb, db2])] },
    ctx: { requests: requests({ stop: new Set(['7/web', '7/db']) }), agentLocks: new Set(['7/db', '7/web']) },
    expect: ['stopContainer c-web-2'],
  },
  {
    name: 'restart, first half: then their dependencies',
    current: world({
      images: [image(webOnDb.image), image(db2.image)],
      containers: [container(webOnDb, { state: 'exited' }), container(db2)],
    }),
    target: { apps: [app([webOnDb, db2])] },
    ctx: { requests: requests({ stop: new Set(['7/web', '7/db']) }), agentLocks: new Set(['7/db', '7/web']) },
    expect: ['stopContainer c-db-2'],
  },
  {
    name: 'restart, first half: a dependency cycle stops together',
    current: world({
      images: [image('img/a:r2'), image('img/b:r2')],
      containers: [container(service('a', { dependsOn: ['b'] })), container(service('b', { dependsOn: ['a'] }))],
    }),
    target: { apps: [app([service('a', { dependsOn: ['b'] }), service('b', { dependsOn: ['a'] })])] },
    ctx: { requests: requests({ stop: new Set(['7/a', '7/b']) }), agentLocks: new Set(['7/a', '7/b']) },
    expect: ['stopContainer c-a-2', 'stopContainer c-b-2'],
  },
  {
    name: 'restart, second half: dependencies start first, whatever the restart policy',
    current: world({
      images: [image(webOnDb.image), image('img/db:r2')],
      containers: [
        container(service('web', { dependsOn: ['db'], restart: 'no' }), { state: 'exited' }),
        container(service('db', { restart: 'no' }), { state: 'exited' }),
      ],
    }),
    target: { apps: [app([service('web', { dependsOn: ['db'], restart: 'no' }), service('db', { restart: 'no' })])] },
    ctx: { requests: requests({ start: new Set(['7/web', '7/db']) }) },
    expect: ['startContainer c-db-2', 'wait'],
  },
  {
    name: 'start on request: an exited service with restart "no" is started',
    current: world({
      images: [image('img/job:r2')],
      containers: [container(service('job', { restart: 'no' }), { state: 'exited' })],
    }),
    target: { apps: [app([service('job', { restart: 'no' })])] },
    ctx: { requests: requests({ start: new Set(['7/job']) }) },
    expect: ['startContainer c-job-2'],
  },
  {
    name: 'start on request does not start what the target says not to run',
    current: world({
      images: [image(web2.image)],
      containers: [container(service('web', { running: false }), { state: 'exited' })],
    }),
    target: { apps: [app([service('web', { running: false })])] },
    ctx: { requests: requests({ start: new Set(['7/web']) }) },
    expect: [],
  },
];

// ------------------------------------------------------------------------------------------ maintenance windows
const closed: Partial<PlanContext> = { updateWindow: { mayApply: false, opensAt: 70_000 } };
const open: Partial<PlanContext> = { updateWindow: { mayApply: true, opensAt: null } };
const running1 = world({ images: [image(web1.image)], containers: [container(web1)] });

/** Planned with the agent holding every lock, so a kill shows as a kill (the window must hold it back anyway). */
const windowCases: Case[] = [
  {
    name: 'closed: the new image is downloaded, the old container kept',
    current: running1,
    target: { apps: [app([web2])] },
    ctx: closed,
    expect: ['fetch img/web:r2', 'wait window'],
  },
  {
    name: 'closed: downloaded, nothing else happens',
    current: world({ images: [image(web1.image), image(web2.image)], containers: [container(web1)] }),
    target: { apps: [app([web2])] },
    ctx: closed,
    expect: ['wait window'],
  },
  {
    name: 'open: the update goes on as without a window',
    current: world({ images: [image(web1.image), image(web2.image)], containers: [container(web1)] }),
    target: { apps: [app([web2])] },
    ctx: open,
    expect: ['killContainer c-web-1'],
  },
  {
    name: 'closed, hand-over: downloads ahead too',
    current: running1,
    target: { apps: [app([withStrategy('hand-over')])] },
    ctx: closed,
    expect: ['fetch img/web:r2', 'wait window'],
  },
  {
    name: 'closed, kill-then-download: nothing before the window (the strategy downloads after the kill)',
    current: running1,
    target: { apps: [app([withStrategy('kill-then-download')])] },
    ctx: closed,
    expect: ['wait window'],
  },
  {
    name: 'closed, delete-then-download: nothing before the window either',
    current: world({ images: [image(web1.image)], containers: [container(web1)], knownImages: [web1.image] }),
    target: { apps: [app([withStrategy('delete-then-download')])] },
    ctx: closed,
    expect: ['wait window'],
  },
  {
    name: 'closed, first install: nothing runs, so the app is installed at once',
    current: world({ networks: [] }),
    target: { apps: [app([web2])] },
    ctx: closed,
    expect: ['createNetwork 7_default', 'fetch img/web:r2'],
  },
  {
    name: 'closed, no update: an exited container of the target is still started (repair, not update)',
    current: world({ images: [image(web2.image)], containers: [container(web2, { state: 'exited' })] }),
    target: { apps: [app([web2])] },
    ctx: closed,
    expect: ['startContainer c-web-2'],
  },
  {
    name: 'closed, no update: a service stopped on request is stopped (a device action, not an update)',
    current: world({ images: [image(web2.image)], containers: [container(web2)] }),
    target: { apps: [app([web2])] },
    ctx: { ...closed, heldStopped: new Set(['7/web']) },
    expect: ['stopContainer c-web-2'],
  },
  {
    name: 'closed: an app leaving the target waits too',
    current: world({ images: [image(web2.image)], containers: [container(web2)] }),
    target: { apps: [] },
    ctx: closed,
    expect: ['wait window'],
  },
  {
    name: 'closed: a purge is a device action and goes ahead',
    current: world({ images: [image(web2.image)], containers: [container(web2)] }),
    target: { apps: [app([web2])] },
    ctx: { ...closed, requests: requests({ purge: new Set([APP]) }) },
    expect: ['killContainer c-web-2'],
  },
  {
    name: 'closed: a changed network definition waits (its containers would be killed)',
    current: world({
      images: [image(web2.image)],
      containers: [container(web2)],
      networks: [{ name: `${APP}_default`, appId: APP, configHash: 'old-net' }],
    }),
    target: { apps: [app([web2])] },
    ctx: closed,
    expect: ['wait window'],
  },
  {
    name: 'closed, converged: nothing to wait for',
    current: world({ images: [image(web2.image)], containers: [container(web2)] }),
    target: { apps: [app([web2])] },
    ctx: closed,
    expect: [],
  },
];

const killing = (s: Step): s is Extract<Step, { action: 'killContainer' | 'stopContainer' }> =>
  s.action === 'killContainer' || s.action === 'stopContainer';

describe('plan()', () => {
  // Each case runs twice. With the agent holding the lock of every service that has a container, the plan is
  // `expect` (a releaseLock beside it is the lock cases' business). Without, every app that would see a kill or stop
  // gets a takeLock instead (unless locks are overridden), and the rest of the plan is the same.
  for (const c of cases) {
    it(c.name, () => {
      const allLocks = new Set(c.current.containers.map((x) => `${x.appId}/${x.serviceName}`));
      const held = plan(c.current, c.target, ctx({ agentLocks: allLocks, ...c.ctx }));
      const visible = held.filter((s) => s.action !== 'releaseLock');
      assert.deepEqual(visible.map(short).sort(), [...c.expect].sort());

      const overridden = c.ctx?.overrideLock === true || (c.ctx?.requests?.force.size ?? 0) > 0;
      if (overridden || c.ctx?.agentLocks) return;
      const apps = [...new Set(visible.filter(killing).map((s) => s.appId))];
      const takes = apps.map((appId) => {
        const services = [...new Set(c.current.containers.filter((x) => x.appId === appId).map((x) => x.serviceName))];
        return `takeLock ${appId} ${services.sort().join(',')}`;
      });
      const expected = [...visible.filter((s) => !killing(s)).map(short), ...takes].sort();
      assert.deepEqual(plan(c.current, c.target, ctx(c.ctx)).map(short).sort(), expected, 'without the lock taken');
    });
  }

  for (const c of lockCases) {
    it(`locks and requests: ${c.name}`, () => {
      assert.deepEqual(plan(c.current, c.target, ctx(c.ctx)).map(short).sort(), [...c.expect].sort());
    });
  }

  for (const c of windowCases) {
    it(`update window: ${c.name}`, () => {
      const allLocks = new Set(c.current.containers.map((x) => `${x.appId}/${x.serviceName}`));
      const steps = plan(c.current, c.target, ctx({ agentLocks: allLocks, ...c.ctx }));
      const visible = steps.filter((s) => s.action !== 'releaseLock');
      assert.deepEqual(visible.map(short).sort(), [...c.expect].sort());
      if (c.ctx === closed) assert.ok(!steps.some((s) => s.action === 'takeLock'), 'no lock taken for a held update');
    });
  }

  it('update window: the wait comes back when the window opens, capped, and says when', () => {
    const target = { apps: [app([web2])] };
    const current = world({ images: [image(web1.image), image(web2.image)], containers: [container(web1)] });
    const waitOf = (opensAt: number | null) => {
      const steps = plan(current, target, ctx({ updateWindow: { mayApply: false, opensAt } }));
      const wait = steps.find((s) => s.action === 'wait');
      assert.ok(wait?.action === 'wait' && wait.window === true && wait.appId === APP);
      return wait;
    };
    assert.equal(waitOf(70_000).retryAfterMs, 60_000);
    assert.match(waitOf(70_000).reason, /opens 1970-01-01T00:01:10\.000Z/);
    assert.equal(waitOf(10_000 + 3_600_000).retryAfterMs, WINDOW_RECHECK_MS);
    assert.equal(waitOf(null).retryAfterMs, WINDOW_RECHECK_MS);
    assert.equal(waitOf(10_100).retryAfterMs, 1_000, 'never a busy loop');
  });

  it('finds images by digest under another repository name', () => {
    const svc = service('web', { image: 'registry.example/v2/abc@sha256:1234' });
    const local: LocalImage = { id: 'sha256:x', repoTags: [], repoDigests: ['registry.example/v2/other@sha256:1234'] };
    const steps = plan(world({ images: [local] }), { apps: [app([svc])] }, ctx());
    assert.deepEqual(steps.map(short), ['createContainer web_2']);
  });

  it('is pure: same input, same output, input untouched', () => {
    const current = world({ images: [image(web1.image), image(web2.image)], containers: [container(web1)] });
    const snapshot = JSON.stringify(current);
    const target = { apps: [app([web2])] };
    assert.deepEqual(plan(current, target, ctx()), plan(current, target, ctx()));
    assert.equal(JSON.stringify(current), snapshot);
  });
});
