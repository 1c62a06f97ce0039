// A large application data tree for bench/delta.mjs's 500 MB scenario, made to compress like real files (neither
// random throughout nor zeros): pseudo-text (gzip ~3x), binaries assembled from slices of the host's own ELF files
// (gzip ~2x) and media-like incompressible files; then a release's worth of changes to it (edited text, rebuilt
// binaries with inserted and patched bytes, replaced, added and removed media).
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A seeded PRNG (mulberry32): the same tree for the same seed, fast enough for hundreds of MB. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SYLLABLES = 'ka lo mi ne ru sa te vo xi zu an el in on ur ba ce di fo gu ha je ki lu ma no pe qu ri so ti'.split(
  ' ',
);

function vocabulary(random) {
  const words = [];
  for (let i = 0; i < 4000; i += 1) {
    let word = '';
    const n = 1 + Math.floor(random() * 4);
    for (let s = 0; s < n; s += 1) word += SYLLABLES[Math.floor(random() * SYLLABLES.length)];
    words.push(word);
  }
  return words;
}

function text(random, words, bytes) {
  const lines = [];
  let size = 0;
  while (size < bytes) {
    const indent = ' '.repeat(2 * Math.floor(random() * 4));
    const count = 3 + Math.floor(random() * 12);
    const parts = [];
    // Zipf-like: a few words are frequent, as in source code and prose.
    for (let i = 0; i < count; i += 1) parts.push(words[Math.floor(words.length * random() ** 3)]);
    const line = `${indent}${parts.join(random() < 0.3 ? '_' : ' ')}${random() < 0.2 ? ';' : ''}\n`;
    lines.push(line);
    size += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, bytes);
}

function elfPool() {
  const dir = '/usr/lib/x86_64-linux-gnu';
  const files = readdirSync(dir)
    .filter((n) => n.includes('.so'))
    .map((n) => join(dir, n))
    .filter((p) => {
      try {
        const s = statSync(p);
        return s.isFile() && s.size > 65536;
      } catch {
        return false;
      }
    })
    .slice(0, 200);
  return Buffer.concat(files.map((f) => readFileSync(f)).slice(0, 200)).subarray(0, 96 * 1024 * 1024);
}

function binary(random, pool, bytes) {
  const parts = [];
  let size = 0;
  while (size < bytes) {
    const length = 256 + Math.floor(random() * 16384);
    const start = Math.floor(random() * (pool.length - length));
    parts.push(pool.subarray(start, start + length));
    size += length;
  }
  return Buffer.concat(parts).subarray(0, bytes);
}

/** Log-uniform file size between 4 KiB and 4 MiB. */
const fileSize = (random) => Math.floor(4096 * 1024 ** random());

/** Writes the tree under `dir`: about `total` bytes, `text`/`binary`/`media` shares 40/32/28 %. */
export function writeTree(dir, total, seed = 1) {
  const random = prng(seed);
  const words = vocabulary(random);
  const pool = elfPool();
  const kinds = [
    ['text', 0.4, (n) => text(random, words, n), 'txt'],
    ['lib', 0.32, (n) => binary(random, pool, n), 'so'],
    ['media', 0.28, (n) => randomBytes(n), 'bin'],
  ];
  for (const [kind, share, make, ext] of kinds) {
    let written = 0;
    for (let i = 0; written < total * share; i += 1) {
      const folder = join(dir, kind, `d${String(Math.floor(i / 40)).padStart(3, '0')}`);
      if (i % 40 === 0) mkdirSync(folder, { recursive: true });
      const size = fileSize(random);
      writeFileSync(join(folder, `f${String(i).padStart(5, '0')}.${ext}`), make(size));
      written += size;
    }
  }
}

function filesOf(dir) {
  return readdirSync(dir, { recursive: true })
    .map((n) => join(dir, n))
    .filter((p) => statSync(p).isFile())
    .sort();
}

/**
 * A release's changes to the tree: 2% of text files edited in place (a few lines changed or inserted), 2% of
 * binaries rebuilt (bytes inserted early, so the rest shifts, and addresses patched throughout), 4 media files
 * replaced, 3 added, 3 removed, a few new text files. Returns a summary for the report.
 */
export function changeTree(dir, seed = 2) {
  const random = prng(seed);
  const words = vocabulary(prng(1));
  const files = filesOf(dir);
  const of = (kind) => files.filter((f) => f.includes(`/${kind}/`));
  let edited = 0;
  for (const file of of('text'))
    if (random() < 0.02) {
      const lines = readFileSync(file, 'utf8').split('\n');
      for (let k = 0; k < 5; k += 1) {
        const at = Math.floor(random() * lines.length);
        if (random() < 0.5) lines[at] = text(random, words, 60).toString().trimEnd();
        else lines.splice(at, 0, text(random, words, 80).toString().trimEnd());
      }
      writeFileSync(file, lines.join('\n'));
      edited += 1;
    }
  let rebuilt = 0;
  for (const file of of('lib'))
    if (random() < 0.02) {
      const data = readFileSync(file);
      const at = Math.floor(random() * Math.min(4096, data.length));
      const out = Buffer.concat([
        data.subarray(0, at),
        randomBytes(64 + Math.floor(random() * 512)),
        data.subarray(at),
      ]);
      for (let k = 0; k < out.length / 4096; k += 1)
        out.writeUInt32LE(Math.floor(random() * 2 ** 32), Math.floor(random() * (out.length - 4)));
      writeFileSync(file, out);
      rebuilt += 1;
    }
  const media = of('media');
  let newBytes = 0;
  for (let k = 0; k < 4; k += 1) {
    const file = media[Math.floor(random() * media.length)];
    const size = statSync(file).size;
    writeFileSync(file, randomBytes(size));
    newBytes += size;
  }
  for (let k = 0; k < 3; k += 1) {
    const size = fileSize(random);
    writeFileSync(join(dir, 'media', 'd000', `new-${k}.bin`), randomBytes(size));
    newBytes += size;
    rmSync(media[Math.floor(random() * media.length)], { force: true });
  }
  for (let k = 0; k < 5; k += 1)
    writeFileSync(join(dir, 'text', 'd000', `new-${k}.txt`), text(random, words, fileSize(random)));
  return { edited, rebuilt, newMediaBytes: newBytes };
}
