import assert from 'node:assert/strict';
import { test } from 'node:test';
import { thrownCode } from '@flotilla/testkit';
import { deviceRefSchema } from '@flotilla/protocol';
import { checkArg, releaseRef } from './context.js';
import { imageRepository } from './deploy.js';
import { configJsonRequest } from './os.js';
import { ownerOf } from './variables.js';

const code = thrownCode;

test('release references: id, commit prefix or none', () => {
  assert.equal(releaseRef('12'), 12);
  assert.equal(releaseRef('abcdef0'), 'abcdef0');
  assert.equal(releaseRef('none'), null);
  assert.equal(
    code(() => releaseRef('v1.0')),
    'VALIDATION_FAILED',
  );
  assert.equal(
    code(() => releaseRef('abc')),
    'VALIDATION_FAILED',
  );
});

test('variable owner: exactly one of --fleet and --device, each validated', () => {
  assert.deepEqual(ownerOf({ fleet: 'kitchen' }), { fleet: { slug: 'kitchen' } });
  assert.deepEqual(ownerOf({ device: 'abcdef0' }), { device: { uuid: 'abcdef0' } });
  assert.equal(
    code(() => ownerOf({})),
    'VALIDATION_FAILED',
  );
  assert.equal(
    code(() => ownerOf({ fleet: 'a', device: 'abcdef0' })),
    'VALIDATION_FAILED',
  );
  assert.equal(
    code(() => ownerOf({ fleet: 'Bad Slug' })),
    'VALIDATION_FAILED',
  );
  assert.deepEqual(ownerOf({ device: 'kitchen pi' }), { device: { uuid: 'kitchen pi' } }, 'a device name');
  assert.equal(
    code(() => ownerOf({ device: '' })),
    'VALIDATION_FAILED',
  );
});

test('checkArg names the argument', () => {
  assert.throws(() => checkArg(deviceRefSchema, '', 'device'), /invalid device ""/);
  assert.throws(() => checkArg(deviceRefSchema, 'tab\there', 'device'), /control characters/);
  assert.equal(checkArg(deviceRefSchema, 'kitchen-pi', 'device'), 'kitchen-pi', 'a device name');
});

test('os config flags map to the protocol request and are validated locally', () => {
  assert.deepEqual(
    configJsonRequest({
      output: 'x',
      hostname: 'probe-1',
      dev: true,
      persistentLogging: true,
      sshKey: ['ssh-ed25519 AAA'],
      wifiSsid: 'home',
      wifiKey: 'password1',
      pollInterval: '60000',
    }),
    {
      hostname: 'probe-1',
      developmentMode: true,
      persistentLogging: true,
      sshKeys: ['ssh-ed25519 AAA'],
      wifiSsid: 'home',
      wifiKey: 'password1',
      appUpdatePollInterval: 60000,
    },
  );
  assert.deepEqual(configJsonRequest({ output: 'x' }), {});
  assert.equal(
    code(() => configJsonRequest({ output: 'x', wifiKey: 'short' })),
    'VALIDATION_FAILED',
  );
  assert.equal(
    code(() => configJsonRequest({ output: 'x', pollInterval: '5' })),
    'VALIDATION_FAILED',
  );
});

test('image repositories are lowercase <registry>/<fleet>/<service>', () => {
  assert.equal(imageRepository('127.0.0.1:5000', 'kitchen', 'Web_UI'), '127.0.0.1:5000/kitchen/web_ui');
});
