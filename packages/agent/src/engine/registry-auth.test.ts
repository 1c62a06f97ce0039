import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { registryAuthFor } from './registry-auth.js';

describe('registryAuthFor()', () => {
  const auth = registryAuthFor({
    hosts: ['registry.example:5000', undefined, 'api.example'],
    uuid: 'u1',
    deviceApiKey: 'k',
  });
  const device = (host: string) => ({ username: 'd_u1', password: 'k', serveraddress: host });
  const cases: Array<{ ref: string; expect: unknown }> = [
    { ref: 'registry.example:5000/app/web@sha256:1', expect: device('registry.example:5000') },
    { ref: 'api.example/v2/app:1', expect: device('api.example') },
    { ref: 'registry.example/app/web:1', expect: undefined },
    { ref: 'docker.io/library/busybox', expect: undefined },
    { ref: 'busybox', expect: undefined },
  ];
  for (const c of cases) it(c.ref, () => assert.deepEqual(auth(c.ref), c.expect));
});
