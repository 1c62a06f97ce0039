import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  displayShortName,
  exactShortName,
  generateShortName,
  isValidLongName,
  longNamePart,
  longNameSlots,
  shortNameChecksum,
} from './fat-names.js';

test('plain upper-case 8.3 names need no long-name slots; others do', () => {
  assert.equal(exactShortName('CONFIG.TXT')?.toString('latin1'), 'CONFIG  TXT');
  assert.equal(exactShortName('README')?.toString('latin1'), 'README     ');
  for (const name of ['config.json', 'config.txt', 'system-connections', 'A.B.C', 'TOOLONGNAME.TXT', 'X.JSON'])
    assert.equal(exactShortName(name), undefined, name);
});

test('generated short names are upper case, ~N unique, with at most three extension letters', () => {
  const first = generateShortName('config.json', new Set());
  assert.equal(displayShortName(first), 'CONFIG~1.JSO');
  assert.equal(displayShortName(generateShortName('config.json', new Set(['CONFIG~1.JSO']))), 'CONFIG~2.JSO');
  assert.equal(displayShortName(generateShortName('system-connections', new Set())), 'SYSTEM~1');
  assert.equal(displayShortName(generateShortName('a b+c.d', new Set())), 'AB_C~1.D');
});

test('long-name slots carry the name in 13-unit pieces, last slot first, with the short name checksum', () => {
  const short = generateShortName('system-connections', new Set());
  const slots = longNameSlots('system-connections', short);
  assert.equal(slots.length, 2);
  assert.equal(slots[0]?.[0], 0x42, 'the last piece, flagged 0x40, comes first');
  assert.equal(slots[1]?.[0], 0x01);
  assert.ok(slots.every((slot) => slot[11] === 0x0f && slot[13] === shortNameChecksum(short)));
  assert.equal(
    slots
      .map((slot) => longNamePart(slot))
      .reverse()
      .join(''),
    'system-connections',
  );
  // exactly 13 units: no terminator, no padding
  assert.equal(longNamePart(longNameSlots('abcdefghijklm', short)[0] as Buffer), 'abcdefghijklm');
});

test('the short name checksum matches the published algorithm on a known name', () => {
  // Computed by hand with the rotate-right-and-add rule over "CONFIG~1JSO".
  let sum = 0;
  for (const byte of Buffer.from('CONFIG~1JSO', 'latin1')) sum = (((sum & 1) << 7) + (sum >> 1) + byte) & 0xff;
  assert.equal(shortNameChecksum(Buffer.from('CONFIG~1JSO', 'latin1')), sum);
});

test('long names refuse separators, reserved characters, control characters and dot names', () => {
  for (const bad of ['', 'a/b', 'a\\b', 'a:b', 'a*', 'x\ny', '.', '..', 'x'.repeat(256)])
    assert.equal(isValidLongName(bad), false, JSON.stringify(bad));
  assert.equal(isValidLongName('flotilla-wifi'), true);
});
