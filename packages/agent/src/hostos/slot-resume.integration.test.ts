import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it, type TestContext } from 'node:test';
import { tempDir } from '@flotilla/testkit';
import type { ImageBytes } from './image-source.js';
import { readBackDigest, writeSlot } from './slot-writer.js';
import { readCheckpoint } from './write-checkpoint.js';

const MIB = 1 << 20;
const SIZE = 8 * MIB;

/** A slot (a regular file standing in for the block device), an image, and the checkpoint file's place. */
async function setup(t: TestContext) {
  const dir = await tempDir('flotilla-slot-resume-');
  t.after(() => dir.remove());
  const slot = join(dir.path, 'slot-b.img');
  await writeFile(slot, Buffer.alloc(12 * MIB));
  const image = randomBytes(SIZE);
  return {
    slot,
    image,
    sha256: createHash('sha256').update(image).digest('hex'),
    checkpoint: join(dir.path, 'host-os-write.json'),
  };
}

/** A source that records each `from` it is asked and the bytes it gives; `cutAt`: it fails there, as a kill would. */
function source(image: Buffer, o: { cutAt?: number; seekable?: boolean } = {}) {
  const seen = { froms: [] as number[], bytes: 0 };
  const open = async (from: number): Promise<ImageBytes> => {
    seen.froms.push(from);
    const start = o.seekable === false ? 0 : from;
    async function* chunks() {
      for (let at = start; at < image.length; at += 64 << 10) {
        const end = Math.min(at + (64 << 10), image.length, o.cutAt ?? Number.POSITIVE_INFINITY);
        if (end <= at) throw new Error('cut');
        seen.bytes += end - at;
        yield image.subarray(at, end);
      }
    }
    return { stream: Readable.from(chunks()), start };
  };
  return { open, seen };
}

describe('slot write resumed from its checkpoint', () => {
  it('a write cut at 3.5 MiB goes on from the last checkpoint, and the slot holds the image', async (t) => {
    const s = await setup(t);
    const first = source(s.image, { cutAt: 3.5 * MIB });
    const w = { device: s.slot, sha256: s.sha256, size: SIZE, checkpoint: s.checkpoint, minCheckpointMs: 0 };
    await assert.rejects(writeSlot({ ...w, open: first.open }), /cut/);
    const saved = await readCheckpoint(s.checkpoint);
    assert.equal(saved?.bytes, 3 * MIB, 'a checkpoint per MiB for an 8 MiB image');
    const percents: number[] = [];
    const again = source(s.image);
    assert.equal(await writeSlot({ ...w, open: again.open, onProgress: (p) => percents.push(p) }), 3 * MIB);
    assert.deepEqual(again.seen.froms, [3 * MIB]);
    assert.equal(again.seen.bytes, SIZE - 3 * MIB, 'only the rest came from the source');
    assert.equal(percents[0], 37, 'progress starts where the slot is');
    assert.equal(await readBackDigest(s.slot, SIZE), s.sha256);
  });

  it('a slot changed under its checkpoint, or a checkpoint of another image, is written from byte 0', async (t) => {
    const s = await setup(t);
    const w = { device: s.slot, sha256: s.sha256, size: SIZE, checkpoint: s.checkpoint, minCheckpointMs: 0 };
    await assert.rejects(writeSlot({ ...w, open: source(s.image, { cutAt: 5 * MIB }).open }), /cut/);
    const slot = await open(s.slot, 'r+');
    await slot.write(Buffer.from([0x5a]), 0, 1, 2 * MIB);
    await slot.close();
    const changed = source(s.image);
    assert.equal(await writeSlot({ ...w, open: changed.open }), 0);
    assert.deepEqual(changed.seen.froms, [0]);
    assert.equal(await readBackDigest(s.slot, SIZE), s.sha256);
    // The same image again finds it whole on the slot: nothing is asked of the source.
    const whole = source(s.image);
    assert.equal(await writeSlot({ ...w, open: whole.open }), SIZE);
    assert.deepEqual(whole.seen.froms, []);

    const other = randomBytes(SIZE);
    const otherSha = createHash('sha256').update(other).digest('hex');
    const fresh = source(other);
    assert.equal(await writeSlot({ ...w, sha256: otherSha, open: fresh.open }), 0);
    assert.deepEqual(fresh.seen.froms, [0]);
  });

  it('resumed bytes that do not make the image are refused, and the next write starts from byte 0', async (t) => {
    const s = await setup(t);
    const w = { device: s.slot, sha256: s.sha256, size: SIZE, checkpoint: s.checkpoint, minCheckpointMs: 0 };
    await assert.rejects(writeSlot({ ...w, open: source(s.image, { cutAt: 4 * MIB }).open }), /cut/);
    const wrong = Buffer.from(s.image);
    wrong[6 * MIB] = (wrong[6 * MIB] as number) ^ 0xff;
    await assert.rejects(writeSlot({ ...w, open: source(wrong).open }), { code: 'OS_IMAGE_INVALID' });
    assert.equal(await readCheckpoint(s.checkpoint), undefined, 'the checkpoint is gone with the bad write');
    const again = source(s.image);
    assert.equal(await writeSlot({ ...w, open: again.open }), 0);
    assert.equal(await readBackDigest(s.slot, SIZE), s.sha256);
  });

  it('a source that cannot start at the checkpoint is read from byte 0', async (t) => {
    const s = await setup(t);
    const w = { device: s.slot, sha256: s.sha256, size: SIZE, checkpoint: s.checkpoint, minCheckpointMs: 0 };
    await assert.rejects(writeSlot({ ...w, open: source(s.image, { cutAt: 4 * MIB }).open }), /cut/);
    const whole = source(s.image, { seekable: false });
    await writeSlot({ ...w, open: whole.open });
    assert.deepEqual(whole.seen.froms, [4 * MIB]);
    assert.equal(whole.seen.bytes, SIZE);
    assert.equal(await readBackDigest(s.slot, SIZE), s.sha256);
    assert.equal(JSON.parse(await readFile(s.checkpoint, 'utf8')).bytes, SIZE);
  });

  it('a finished write leaves its checkpoint whole, even between intervals: the next write only reads', async (t) => {
    const s = await setup(t);
    // Checkpoints at most once a minute: none in the middle, the one at the end all the same.
    const w = { device: s.slot, sha256: s.sha256, size: SIZE, checkpoint: s.checkpoint, minCheckpointMs: 60_000 };
    await writeSlot({ ...w, open: source(s.image).open });
    assert.equal((await readCheckpoint(s.checkpoint))?.bytes, SIZE);
    const again = source(s.image);
    assert.equal(await writeSlot({ ...w, open: again.open }), SIZE);
    assert.deepEqual(again.seen.froms, []);
  });
});
