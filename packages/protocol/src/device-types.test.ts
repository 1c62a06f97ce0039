import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DEVICE_TYPES,
  formatPlatform,
  parsePlatform,
  platformOfDeviceType,
  platformOfEngine,
  runsOn,
} from './device-types.js';

test('device types map to the platform their devices run', () => {
  const cases: [string, string | undefined][] = [
    ['generic-amd64', 'linux/amd64'],
    ['intel-nuc', 'linux/amd64'],
    ['generic-aarch64', 'linux/arm64'],
    ['raspberrypi4-64', 'linux/arm64'],
    ['raspberrypi5', 'linux/arm64'],
    ['jetson-nano', 'linux/arm64'],
    ['generic-armv7ahf', 'linux/arm/v7'],
    ['raspberrypi3', 'linux/arm/v7'],
    ['raspberry-pi', 'linux/arm/v6'],
    ['generic-rpi', 'linux/arm/v6'],
    ['qemux86', 'linux/386'],
    ['toaster', undefined],
    ['generic-', undefined],
    ['Generic-amd64', undefined],
  ];
  for (const [type, want] of cases) {
    const platform = platformOfDeviceType(type);
    assert.equal(platform && formatPlatform(platform), want, type);
  }
});

test('--platform values parse to what Flotilla builds for, and nothing else', () => {
  const cases: [string, string | undefined][] = [
    ['linux/amd64', 'linux/amd64'],
    ['linux/arm64', 'linux/arm64'],
    ['linux/arm64/v8', 'linux/arm64'],
    ['linux/arm', 'linux/arm/v7'],
    ['linux/arm/v7', 'linux/arm/v7'],
    ['linux/arm/v6', 'linux/arm/v6'],
    ['linux/386', 'linux/386'],
    ['linux/arm/v8', undefined],
    ['linux/amd64/v7', undefined],
    ['windows/amd64', undefined],
    ['linux/riscv64', undefined],
    ['amd64', undefined],
    ['', undefined],
  ];
  for (const [text, want] of cases) {
    const platform = parsePlatform(text);
    assert.equal(platform && formatPlatform(platform), want, text);
  }
});

test('an image runs on a device of its architecture; 32-bit ARM runs older variants, not newer ones', () => {
  const arm64 = platformOfDeviceType('raspberrypi4-64')!;
  const armv7 = platformOfDeviceType('raspberrypi3')!;
  const armv6 = platformOfDeviceType('raspberry-pi')!;
  assert.equal(runsOn({ architecture: 'arm64' }, arm64), true);
  assert.equal(runsOn({ architecture: 'arm64', variant: 'v8' }, arm64), true);
  assert.equal(runsOn({ architecture: 'amd64' }, arm64), false);
  assert.equal(runsOn({ architecture: 'arm', variant: 'v6' }, armv7), true);
  assert.equal(runsOn({ architecture: 'arm', variant: 'v7' }, armv6), false);
  assert.equal(runsOn({ architecture: 'arm' }, armv7), true, 'no variant means v7');
  assert.equal(runsOn({ architecture: 'arm64' }, armv7), false);
  assert.equal(runsOn({ os: 'linux', architecture: 'arm64' }, arm64), true);
  assert.equal(runsOn({ os: 'windows', architecture: 'arm64' }, arm64), false, 'another os never runs');
});

test("the engine's own platform, from docker version and info", () => {
  assert.equal(formatPlatform(platformOfEngine('amd64', 'x86_64')!), 'linux/amd64');
  assert.equal(formatPlatform(platformOfEngine('arm64', 'aarch64')!), 'linux/arm64');
  assert.equal(formatPlatform(platformOfEngine('arm', 'armv7l')!), 'linux/arm/v7');
  assert.equal(formatPlatform(platformOfEngine('arm', 'armv6l')!), 'linux/arm/v6');
  assert.equal(platformOfEngine('mips64le'), undefined);
});

test('every device type offered in a picker has a platform, and none is listed twice', () => {
  assert.ok(DEVICE_TYPES.includes('generic-amd64') && DEVICE_TYPES.includes('raspberrypi4-64'));
  assert.equal(new Set(DEVICE_TYPES).size, DEVICE_TYPES.length);
  for (const type of DEVICE_TYPES) assert.ok(platformOfDeviceType(type), type);
});
