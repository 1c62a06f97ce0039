import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { reorderRanges, tarUnits } from './tar-reorder.js';

let dir: string;
const tar = (name: string, files: string[]) => {
  execFileSync('tar', ['--format=gnu', '-cf', join(dir, name), '-C', join(dir, 'files'), ...files]);
  return join(dir, name);
};

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flotilla-tar-reorder-'));
  execFileSync('mkdir', ['-p', join(dir, 'files/sub')]);
  await writeFile(join(dir, 'files/one'), 'first file\n'.repeat(100));
  await writeFile(join(dir, 'files/two'), 'second file\n'.repeat(300));
  // A GNU long name entry: its extended header belongs to the entry that follows it.
  await writeFile(join(dir, 'files/sub', 'x'.repeat(150)), 'long named\n'.repeat(50));
});
after(() => rm(dir, { recursive: true, force: true }));

test("the ranges put the source tar's entries in the target's order, long names included", async () => {
  const long = `sub/${'x'.repeat(150)}`;
  const source = tar('a.tar', ['one', 'two', long]);
  const target = tar('b.tar', [long, 'one', 'two']);
  const units = await tarUnits(source);
  assert.deepEqual(
    units?.map((u) => u.key),
    ['one', 'two', long],
  );
  const found = await reorderRanges([source], target);
  assert.ok(found, 'a reordering');
  const bytes = await readFile(source);
  const built = Buffer.concat(found.ranges.map(([start, length]) => bytes.subarray(start, start + length)));
  const byKey = new Map(units!.map((u) => [u.key, bytes.subarray(u.start, u.end)]));
  assert.deepEqual(built, Buffer.concat([byKey.get(long)!, byKey.get('one')!, byKey.get('two')!]));
});

test('no reordering when the order is the same, entries are only left out, or a file is not a tar', async () => {
  const source = tar('c.tar', ['one', 'two']);
  assert.equal(await reorderRanges([source], tar('d.tar', ['one', 'two'])), undefined);
  assert.equal(await reorderRanges([source], tar('e.tar', ['two'])), undefined);
  await writeFile(join(dir, 'not-a-tar'), 'x'.repeat(2048));
  assert.equal(await reorderRanges([source], join(dir, 'not-a-tar')), undefined);
});

test("an entry the same-index layer lacks comes from another of A's layers, named by its index", async () => {
  const first = tar('f.tar', ['one']);
  const other = tar('g.tar', ['two']);
  const found = await reorderRanges([first, other], tar('h.tar', ['two', 'one']));
  assert.ok(found);
  const units = (await tarUnits(other))!;
  assert.deepEqual(found.ranges[0], [units[0]!.start, units[0]!.end - units[0]!.start, 1]);
  assert.equal(found.ranges[1]!.length, 2);
  assert.deepEqual(found.used.sort(), [0, 1]);
});
