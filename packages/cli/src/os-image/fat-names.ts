/**
 * FAT directory entry names: 8.3 short names, VFAT long-name (LFN) slots and their checksum. Pure functions.
 */

/** Characters a short name may hold besides A-Z and 0-9. */
const SHORT_EXTRA = new Set("!#$%&'()-@^_`{}~".split(''));
/** Characters no long name may hold. */
const LONG_FORBIDDEN = /[\\/:*?"<>|]/;

/** True when `text` holds an ASCII control character (below space, or DEL). */
export function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

export function isValidLongName(name: string): boolean {
  return (
    name.length > 0 &&
    name.length <= 255 &&
    !LONG_FORBIDDEN.test(name) &&
    !hasControlCharacter(name) &&
    name !== '.' &&
    name !== '..'
  );
}

/** The 11-byte short name when `name` is already a plain upper-case 8.3 name (no long-name slots needed). */
export function exactShortName(name: string): Buffer | undefined {
  const match = /^([^.]{1,8})(?:\.([^.]{1,3}))?$/.exec(name);
  if (!match) return undefined;
  const [, base = '', ext = ''] = match;
  const ok = (part: string) => [...part].every((c) => /[A-Z0-9]/.test(c) || SHORT_EXTRA.has(c));
  if (!ok(base) || !ok(ext)) return undefined;
  return Buffer.from(base.padEnd(8) + ext.padEnd(3), 'latin1');
}

/** `CONFIG  JSN` → `CONFIG.JSN`, as the short name reads. */
export function displayShortName(raw: Buffer): string {
  const base = raw.subarray(0, 8).toString('latin1').trimEnd();
  const ext = raw.subarray(8, 11).toString('latin1').trimEnd();
  return ext ? `${base}.${ext}` : base;
}

/** A short name `BASE~N.EXT` for a long name, unique among `taken` (display forms, upper case). */
export function generateShortName(name: string, taken: ReadonlySet<string>): Buffer {
  const clean = (part: string) =>
    [...part.toUpperCase().replace(/[ .]/g, '')]
      .map((c) => (/[A-Z0-9]/.test(c) || SHORT_EXTRA.has(c) ? c : '_'))
      .join('');
  const dot = name.lastIndexOf('.');
  const base = clean(dot > 0 ? name.slice(0, dot) : name) || 'FILE';
  const ext = clean(dot > 0 ? name.slice(dot + 1) : '').slice(0, 3);
  for (let n = 1; n < 1_000_000; n++) {
    const tail = `~${n}`;
    const candidate = base.slice(0, 8 - tail.length) + tail;
    const display = ext ? `${candidate}.${ext}` : candidate;
    if (!taken.has(display)) return Buffer.from(candidate.padEnd(8) + ext.padEnd(3), 'latin1');
  }
  throw new Error('no free short name'); // unreachable: a directory holds far fewer than a million entries
}

export function shortNameChecksum(raw: Buffer): number {
  let sum = 0;
  for (let i = 0; i < 11; i++) sum = (((sum & 1) << 7) + (sum >> 1) + (raw[i] ?? 0)) & 0xff;
  return sum;
}

const CHAR_OFFSETS = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];

/** The long-name slots for `name`, in on-disk order (highest sequence number first), each 32 bytes. */
export function longNameSlots(name: string, shortName: Buffer): Buffer[] {
  const units: number[] = [];
  for (let i = 0; i < name.length; i++) units.push(name.charCodeAt(i));
  const count = Math.ceil(units.length / 13);
  if (units.length % 13 !== 0) units.push(0);
  while (units.length < count * 13) units.push(0xffff);
  const checksum = shortNameChecksum(shortName);
  const slots: Buffer[] = [];
  for (let seq = count; seq >= 1; seq--) {
    const slot = Buffer.alloc(32);
    slot[0] = seq === count ? seq | 0x40 : seq;
    slot[11] = 0x0f;
    slot[13] = checksum;
    CHAR_OFFSETS.forEach((offset, i) => {
      slot.writeUInt16LE(units[(seq - 1) * 13 + i] ?? 0xffff, offset);
    });
    slots.push(slot);
  }
  return slots;
}

/** The 13 UTF-16 units one long-name slot carries, up to its terminator. */
export function longNamePart(slot: Buffer): string {
  let text = '';
  for (const offset of CHAR_OFFSETS) {
    const unit = slot.readUInt16LE(offset);
    if (unit === 0 || unit === 0xffff) break;
    text += String.fromCharCode(unit);
  }
  return text;
}

/** DOS date and time words for `date` (local time, as FAT stores it). */
export function dosDateTime(date: Date): { date: number; time: number } {
  const year = Math.min(Math.max(date.getFullYear(), 1980), 2107);
  return {
    date: ((year - 1980) << 9) | ((date.getMonth() + 1) << 5) | date.getDate(),
    time: (date.getHours() << 11) | (date.getMinutes() << 5) | Math.floor(date.getSeconds() / 2),
  };
}
