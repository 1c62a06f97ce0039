import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bearerChallenge, parseDigestRef } from './registry-client.js';

const HEX = 'a'.repeat(64);

describe('parseDigestRef', () => {
  const cases: Array<[string, ReturnType<typeof parseDigestRef>]> = [
    [
      `127.0.0.1:5000/fleet-1/main@sha256:${HEX}`,
      { host: '127.0.0.1:5000', repository: 'fleet-1/main', digest: `sha256:${HEX}` },
    ],
    [
      `registry.example.com/a/b/c@sha256:${HEX}`,
      { host: 'registry.example.com', repository: 'a/b/c', digest: `sha256:${HEX}` },
    ],
    // A tag is not pulled by the agent (nothing to check it against); neither is a short or foreign digest.
    ['registry.example.com/a/b:latest', undefined],
    [`registry.example.com/a@sha256:${'a'.repeat(63)}`, undefined],
    [`registry.example.com/a@sha512:${HEX}`, undefined],
    // A repository name the registry could not hold never reaches a URL.
    [`registry.example.com/../x@sha256:${HEX}`, undefined],
    [`registry.example.com/A/B@sha256:${HEX}`, undefined],
    [`busybox@sha256:${HEX}`, undefined],
  ];
  for (const [ref, expected] of cases) it(ref, () => assert.deepEqual(parseDigestRef(ref), expected));
});

describe('bearerChallenge', () => {
  it('reads realm and service', () =>
    assert.deepEqual(bearerChallenge('Bearer realm="https://h/auth/v1/token",service="h:443"'), {
      realm: 'https://h/auth/v1/token',
      service: 'h:443',
    }));
  it('is undefined for Basic or nothing', () => {
    assert.equal(bearerChallenge('Basic realm="flotilla"'), undefined);
    assert.equal(bearerChallenge(undefined), undefined);
  });
});
