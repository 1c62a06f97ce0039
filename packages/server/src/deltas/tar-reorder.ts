import { open } from 'node:fs/promises';
import { DELTA_MAX_REORDER_RANGES } from '@flotilla/protocol';

/** One tar entry with the extended headers (pax, GNU long name) before it: bytes `[start, end)` of the tar. */
interface TarUnit {
  key: string;
  start: number;
  end: number;
}

const BLOCK = 512;

function field(block: Buffer, from: number, length: number): string {
  const raw = block.subarray(from, from + length);
  const nul = raw.indexOf(0);
  return raw.subarray(0, nul === -1 ? length : nul).toString('utf8');
}

function entrySize(block: Buffer): number | undefined {
  // GNU base-256: the high bit of the first byte set, the value big-endian in the rest.
  if ((block[124]! & 0x80) !== 0) {
    let value = 0;
    for (let i = 125; i < 136; i += 1) value = value * 256 + block[i]!;
    return value;
  }
  const text = field(block, 124, 12).trim();
  if (!/^[0-7]*$/.test(text)) return undefined;
  return text === '' ? 0 : Number.parseInt(text, 8);
}

function paxPath(data: Buffer): string | undefined {
  let at = 0;
  let path: string | undefined;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space === -1) break;
    const length = Number(data.subarray(at, space).toString('ascii'));
    if (!Number.isInteger(length) || length <= 0) break;
    const record = data.subarray(space + 1, at + length - 1).toString('utf8');
    if (record.startsWith('path=')) path = record.slice(5);
    at += length;
  }
  return path;
}

const normalise = (name: string) => name.replace(/^(\.\/|\/)+/, '').replace(/\/+$/, '') || '.';

/** The entries of an uncompressed tar file, in order; undefined when it does not parse as one. */
export async function tarUnits(file: string): Promise<TarUnit[] | undefined> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const units: TarUnit[] = [];
    const block = Buffer.alloc(BLOCK);
    let at = 0;
    let unitStart = 0;
    let longName: string | undefined;
    while (at + BLOCK <= size) {
      await handle.read(block, 0, BLOCK, at);
      if (block.every((b) => b === 0)) return units;
      const length = entrySize(block);
      if (length === undefined || units.length >= DELTA_MAX_REORDER_RANGES) return undefined;
      const dataEnd = at + BLOCK + Math.ceil(length / BLOCK) * BLOCK;
      if (dataEnd > size) return undefined;
      const type = String.fromCharCode(block[156]!);
      if (type === 'x' || type === 'L') {
        const data = Buffer.alloc(length);
        await handle.read(data, 0, length, at + BLOCK);
        longName = type === 'L' ? field(data, 0, length) : (paxPath(data) ?? longName);
      } else {
        const prefix = field(block, 257, 6).startsWith('ustar') ? field(block, 345, 155) : '';
        const name = longName ?? (prefix ? `${prefix}/${field(block, 0, 100)}` : field(block, 0, 100));
        units.push({ key: type === 'g' ? '\0global' : normalise(name), start: unitStart, end: dataEnd });
        longName = undefined;
        unitStart = dataEnd;
      }
      at = dataEnd;
    }
    return units;
  } finally {
    await handle.close();
  }
}

/** A range of one of the source files: `[start, length]` of the first, `[start, length, i]` of `files[i]`. */
export type SourceRange = [number, number] | [number, number, number];

/**
 * Byte ranges of the source tars (`sources[0]`: A's layer at B's layer's index, the preferred one; then A's other
 * layers, the topmost first), in the target tar's entry order, each entry taken from the first source that has it
 * (entries no source has are left out): concatenated, they make a source whose entries sit where the target's are.
 * xdelta3 finds matches only near its position, so this is what lets it find a layer re-exported in another file
 * order, or files that moved between layers (scenario 2 in deltas/README.md: apt's caches). Undefined when the
 * target is not a tar or the ranges are the first source in its own order (nothing to gain).
 */
export async function reorderRanges(
  sources: readonly string[],
  target: string,
): Promise<{ ranges: SourceRange[]; used: number[] } | undefined> {
  const to = await tarUnits(target);
  if (!to) return undefined;
  const indexes = await Promise.all(sources.map((file) => tarUnits(file)));
  const byKey = new Map<string, { unit: TarUnit; file: number }>();
  for (const [file, units] of indexes.entries())
    for (const unit of units ?? []) if (!byKey.has(unit.key)) byKey.set(unit.key, { unit, file });
  const ranges: SourceRange[] = [];
  let lastFile = -1;
  for (const unit of to) {
    const found = byKey.get(unit.key);
    if (!found) continue;
    const last = ranges.at(-1);
    const { start, end } = found.unit;
    if (last && lastFile === found.file && last[0] + last[1] === start) last[1] += end - start;
    else ranges.push(found.file === 0 ? [start, end - start] : [start, end - start, found.file]);
    lastFile = found.file;
  }
  if (ranges.length === 0) return undefined;
  // All from the first source, in its own order: xdelta3 finds the matches as well without a reordering.
  const inOrder = ranges.every((r, i) => r.length === 2 && (i === 0 || r[0] > ranges[i - 1]![0]));
  if (inOrder) return undefined;
  return { ranges, used: [...new Set(ranges.map((r) => r[2] ?? 0))] };
}
