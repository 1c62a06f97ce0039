import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FlotillaError } from '@flotilla/protocol';
import { describeTarget, parsePort, parseTunnelMapping, parseTunnelMappings } from './tunnel-mapping.js';

test('mappings: host and service forms', () => {
  const cases: Array<[string, ReturnType<typeof parseTunnelMapping>]> = [
    ['4321:22', { localPort: 4321, devicePort: 22 }],
    ['0:22', { localPort: 0, devicePort: 22 }],
    ['8080:web:80', { localPort: 8080, service: 'web', devicePort: 80 }],
    ['65535:db_1.main:65535', { localPort: 65_535, service: 'db_1.main', devicePort: 65_535 }],
  ];
  for (const [text, expected] of cases) assert.deepEqual(parseTunnelMapping(text), expected, text);
});

test('mappings: each mistake named in the message', () => {
  const cases: Array<[string, RegExp]> = [
    ['22', /give <local port>:<device port> or <local port>:<service>:<device port>/],
    ['1:2:3:4', /give <local port>/],
    ['', /give <local port>/],
    ['65536:22', /local port "65536" is not 0-65535/],
    ['-1:22', /local port "-1"/],
    ['abc:22', /local port "abc"/],
    ['0x10:22', /local port "0x10"/],
    [' 80:22', /local port " 80"/],
    ['4321:0', /device port "0" is not 1-65535/],
    ['4321:', /device port "" is not 1-65535/],
    ['4321:1e3', /device port "1e3"/],
    ['4321::80', /service "":/],
    ['4321:-web:80', /service "-web":/],
    ['4321:we b:80', /service "we b":/],
  ];
  for (const [text, message] of cases) {
    assert.throws(
      () => parseTunnelMapping(text),
      (error: unknown) =>
        error instanceof FlotillaError &&
        error.code === 'VALIDATION_FAILED' &&
        error.message.startsWith(`invalid mapping ${JSON.stringify(text)}: `) &&
        message.test(error.message),
      text,
    );
  }
});

test('mappings: a local port twice is refused; 0 (any free port) may repeat; none at all is refused', () => {
  assert.deepEqual(
    parseTunnelMappings(['0:22', '0:web:80', '4321:22']).map((m) => m.localPort),
    [0, 0, 4321],
  );
  assert.throws(
    () => parseTunnelMappings(['4321:22', '8080:web:80', '4321:23']),
    /"4321:23": local port 4321 is already used/,
  );
  assert.throws(() => parseTunnelMappings([]), /give at least one mapping/);
});

test('ports: decimal digits in range only', () => {
  assert.equal(parsePort('0', 0), 0);
  assert.equal(parsePort('0', 1), undefined);
  assert.equal(parsePort('00080', 1), 80);
  assert.equal(parsePort('65535', 1), 65_535);
  assert.equal(parsePort('65536', 1), undefined);
  assert.equal(parsePort('100000', 1), undefined);
  assert.equal(parsePort('8.0', 1), undefined);
});

test('targets as the tunnel prints them', () => {
  assert.equal(describeTarget({ localPort: 1, devicePort: 22 }), '22');
  assert.equal(describeTarget({ localPort: 1, service: 'web', devicePort: 80 }), 'web:80');
});
