import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FlotillaError } from '@flotilla/protocol';
import { REDACTED, checkWifi, redactConfig, redactKeyfile, wifiKeyfile } from './boot-files.js';

test('redactConfig hides every key and passphrase at any depth, and nothing else', () => {
  const config = {
    apiKey: 'a',
    provisioningApiKey: 'b',
    deviceApiKey: 'c',
    deviceApiKeys: { 'api.example': 'd' },
    applicationName: 'kitchen',
    os: { sshKeys: ['ssh-ed25519 AAAA'], network: { wifi: { ssid: 'home', psk: 'e' } } },
  };
  assert.deepEqual(redactConfig(config), {
    apiKey: REDACTED,
    provisioningApiKey: REDACTED,
    deviceApiKey: REDACTED,
    deviceApiKeys: { 'api.example': REDACTED },
    applicationName: 'kitchen',
    os: { sshKeys: ['ssh-ed25519 AAAA'], network: { wifi: { ssid: 'home', psk: REDACTED } } },
  });
  assert.equal(config.apiKey, 'a', 'the input is not changed');
});

test('the WiFi keyfile has the sections NetworkManager reads; open networks have no security section', () => {
  const text = wifiKeyfile({ ssid: ' lead\\space', key: 'passphrase' }, '00000000-0000-4000-8000-000000000000');
  assert.match(text, /^\[connection\]\nid=flotilla-wifi\nuuid=00000000-0000-4000-8000-000000000000\ntype=wifi\n/);
  assert.match(text, /\n\[wifi\]\nmode=infrastructure\nssid=\\slead\\\\space\n/);
  assert.match(text, /\n\[wifi-security\]\nauth-alg=open\nkey-mgmt=wpa-psk\npsk=passphrase\n/);
  assert.match(text, /\n\[ipv4\]\nmethod=auto\n\n\[ipv6\]\naddr-gen-mode=stable-privacy\nmethod=auto\n$/);
  assert.doesNotMatch(wifiKeyfile({ ssid: 'cafe' }), /wifi-security|psk/);
  assert.equal(redactKeyfile(text).includes('passphrase'), false);
  assert.match(redactKeyfile(text), /\npsk=<redacted>\n/);
});

test('checkWifi: a key needs an SSID; SSIDs are 1-32 bytes without control characters; keys 8-63 printable', () => {
  const refused = (ssid: string | undefined, key: string | undefined, message: RegExp) =>
    assert.throws(
      () => checkWifi(ssid, key),
      (e: unknown) => e instanceof FlotillaError && e.code === 'VALIDATION_FAILED' && message.test(e.message),
    );
  assert.equal(checkWifi(undefined, undefined), undefined);
  assert.deepEqual(checkWifi('home', 'passphrase'), { ssid: 'home', key: 'passphrase' });
  refused(undefined, 'passphrase', /needs --wifi-ssid/);
  refused('', undefined, /1-32 bytes/);
  refused('é'.repeat(17), undefined, /1-32 bytes/);
  refused('a\nb', undefined, /control/);
  refused('home', 'short', /8-63/);
  refused('home', 'x'.repeat(64), /8-63/);
  refused('home', 'passé-word', /8-63/);
});
