import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ContainerEngine } from '../engine/container-engine.js';
import type { TargetModel, TargetService } from '../reconcile/state.js';
import { AgentActions, startOrder, type AgentActionsDeps } from './agent-actions.js';

const svc = (serviceName: string, dependsOn: string[] = []): TargetService => ({ serviceName, dependsOn }) as TargetService;

test('startOrder puts dependencies first and survives cycles and unknown names', () => {
  const cases: Array<{ services: TargetService[]; expect: string[] }> = [
    { services: [svc('web', ['db']), svc('db')], expect: ['db', 'web'] },
    { services: [svc('a', ['b']), svc('b', ['c']), svc('c')], expect: ['c', 'b', 'a'] },
    { services: [svc('a', ['ghost']), svc('b')], expect: ['a', 'b'] },
    { services: [svc('a', ['b']), svc('b', ['a']), svc('c')], expect: ['c', 'a', 'b'] },
  ];
  for (const c of cases) assert.deepEqual(startOrder(c.services).map((s) => s.serviceName), c.expect);
});

test('a stopped service is held until started again or until its target changes', async () => {
  const calls: string[] = [];
  const web = { appId: 7, serviceName: 'web', commit: 'c1', configHash: 'h1', dependsOn: [], running: true } as unknown as TargetService;
  let target = { apps: [{ appId: 7, appUuid: 'u', name: 'app', commit: 'c1', releaseId: 1, services: [web], volumes: [], networks: [] }] } as unknown as TargetModel;
  const container = { id: 'c-web', appId: 7, serviceName: 'web', state: 'running', createdAt: 1 };
  const engine = {
    snapshot: async () => ({ containers: [container], volumes: [], networks: [], images: [] }),
    stopContainer: async (id: string) => void calls.push(`stop ${id}`),
    startContainer: async (id: string) => void calls.push(`start ${id}`),
  } as unknown as ContainerEngine;
  const actions = new AgentActions({
    engine,
    namespace: 'unit-',
    servicesDir: '/nonexistent',
    view: () => ({ current: undefined, target, statuses: new Map(), progress: new Map(), failed: false }),
    lockOverridden: () => false,
    exclusive: (fn: () => Promise<unknown>) => fn(),
    wake: () => undefined,
    system: () => undefined,
  } as unknown as AgentActionsDeps);

  await actions.serviceAction('stop', 7, 'web', false);
  assert.deepEqual([...actions.heldStopped(target)], ['7/web']);
  assert.deepEqual([...actions.heldStopped(target)], ['7/web'], 'still held on the next pass');
  await actions.serviceAction('start', 7, 'web', false);
  assert.deepEqual([...actions.heldStopped(target)], []);

  await actions.serviceAction('stop', 7, 'web', false);
  target = { apps: [{ ...target.apps[0]!, services: [{ ...web, configHash: 'h2' }] }] } as TargetModel;
  assert.deepEqual([...actions.heldStopped(target)], [], 'a new target for the service releases the hold');
  await actions.serviceAction('stop', 7, 'web', false);
  assert.deepEqual([...actions.heldStopped({ apps: [] })], [], 'so does the service leaving the target');
  assert.deepEqual(calls, ['stop c-web', 'start c-web', 'stop c-web', 'stop c-web']);
  await assert.rejects(actions.serviceAction('stop', 8, 'web', false), /app 8 is not on this device/);
});
