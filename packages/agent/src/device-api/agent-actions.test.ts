import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TargetService } from '../reconcile/state.js';
import { startOrder } from './agent-actions.js';

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
