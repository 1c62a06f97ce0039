import assert from 'node:assert/strict';
import { test } from 'node:test';
import { safeNext } from './safe-next.js';

test('after sign-in the user goes back to a page of this site, never to another one', () => {
  const cases: [string | null, string][] = [
    [null, '/fleets'],
    ['/devices/abc1234?x=1', '/devices/abc1234?x=1'],
    ['//evil.example/x', '/fleets'],
    ['/\\evil.example', '/fleets'],
    ['https://evil.example', '/fleets'],
    ['javascript:alert(1)', '/fleets'],
  ];
  for (const [next, want] of cases) assert.equal(safeNext(next), want, String(next));
});
