import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type ConfigJsonForm, EMPTY_CONFIG_JSON_FORM, configJsonRequest } from './config-json-request.js';

const form = (fields: Partial<ConfigJsonForm>) => configJsonRequest({ ...EMPTY_CONFIG_JSON_FORM, ...fields });

test('an empty form asks for the server defaults, as `flotilla os config <fleet>` does', () => {
  assert.deepEqual(form({}), { ok: true, body: {} });
});

test('each field becomes the option the CLI flag sets', () => {
  assert.deepEqual(
    form({
      hostname: ' kiosk-1 ',
      developmentMode: true,
      persistentLogging: true,
      sshKeys: 'ssh-ed25519 AAAA one\n\n  ssh-rsa BBBB two  \n',
      wifiSsid: 'Greenhouse',
      wifiKey: 'correct horse',
      pollIntervalSeconds: '60',
    }),
    {
      ok: true,
      body: {
        hostname: 'kiosk-1',
        developmentMode: true,
        persistentLogging: true,
        sshKeys: ['ssh-ed25519 AAAA one', 'ssh-rsa BBBB two'],
        wifiSsid: 'Greenhouse',
        wifiKey: 'correct horse',
        appUpdatePollInterval: 60_000,
      },
    },
  );
});

test('mistakes are named by field before anything is sent', () => {
  assert.deepEqual(form({ hostname: 'not a hostname!' }), { ok: false, error: 'Hostname: a valid hostname label' });
  assert.deepEqual(form({ pollIntervalSeconds: '5' }), {
    ok: false,
    error: 'Poll interval (at least 10 s): Too small: expected number to be >=10000',
  });
  assert.deepEqual(form({ pollIntervalSeconds: '1.5' }), {
    ok: false,
    error: 'Poll interval: a whole number of seconds.',
  });
  assert.deepEqual(form({ wifiKey: 'a passphrase' }), {
    ok: false,
    error: 'A WiFi passphrase needs the network name (SSID).',
  });
  assert.equal(form({ wifiSsid: 'net', wifiKey: 'short' }).ok, false);
});
