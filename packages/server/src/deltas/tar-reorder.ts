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

/**
 * Byte ranges `[start, length]` of the source tar, in the target tar's entry order (entries the target lacks are
 * left out): concatenated, they make a source whose entries sit where the target's are, so xdelta3, which finds
 * matches only near its position, finds them all when a layer was re-exported in another file order (scenario 2 in
 * deltas/README.md). Undefined when either is not a tar or the order is already the source's (nothing to gain).
 */
export async function reorderRanges(source: string, target: string): Promise<Array<[number, number]> | undefined> {
  const [from, to] = await Promise.all([tarUnits(source), tarUnits(target)]);
  if (!from || !to || from.length === 0) return undefined;
  const byKey = new Map<string, TarUnit>();
  for (const unit of from) if (!byKey.has(unit.key)) byKey.set(unit.key, unit);
  const ranges: Array<[number, number]> = [];
  for (const unit of to) {
    const found = byKey.get(unit.key);
    if (!found) continue;
    const last = ranges.at(-1);
    if (last && last[0] + last[1] === found.start) last[1] += found.end - found.start;
    else ranges.push([found.start, found.end - found.start]);
  }
  // In source order already (at most entries left out): xdelta3 finds the matches as well without a reordering.
  const monotonic = ranges.every((range, i) => i === 0 || range[0] > ranges[i - 1]![0]);
  return monotonic ? undefined : ranges;
}
