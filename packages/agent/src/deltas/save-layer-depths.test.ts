import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SaveLayerDepths } from './save-layer-depths.js';

const json = (parent?: string) => JSON.stringify({ id: 'x', ...(parent ? { parent } : {}), created: '1970' });

// Chain root → mid → top; each case lists the v1 jsons in the order a save's lexical order might give them.
const cases: Array<{
  name: string;
  order: Array<[string, string | undefined]>;
  expected: Record<string, number | undefined>;
}> = [
  {
    name: 'in chain order',
    order: [
      ['root', undefined],
      ['mid', 'root'],
      ['top', 'mid'],
    ],
    expected: { root: 0, mid: 1, top: 2 },
  },
  {
    name: 'top first: known once the root arrives',
    order: [
      ['top', 'mid'],
      ['root', undefined],
      ['mid', 'root'],
    ],
    expected: { root: 0, mid: 1, top: 2 },
  },
  {
    name: 'top then mid: unknown until the root',
    order: [
      ['top', 'mid'],
      ['mid', 'root'],
    ],
    expected: { root: undefined, mid: undefined, top: undefined },
  },
];

for (const c of cases)
  test(`save layer depths: ${c.name}`, () => {
    const depths = new SaveLayerDepths();
    for (const [id, parent] of c.order) depths.note(id, json(parent));
    for (const [id, depth] of Object.entries(c.expected)) assert.equal(depths.depthOf(id), depth, id);
  });

test('save layer depths: a layer is unknown before the root is seen, known after', () => {
  const depths = new SaveLayerDepths();
  depths.note('mid', json('root'));
  assert.equal(depths.depthOf('mid'), undefined);
  depths.note('root', json());
  assert.equal(depths.depthOf('mid'), 1);
  depths.note('bad', '{not json');
  assert.equal(depths.depthOf('bad'), undefined);
});
