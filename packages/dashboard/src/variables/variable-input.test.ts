import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkDraft, isDeviceSource, previewOf, servicesOf, sourceLabel } from './variable-input.js';

test('a draft becomes the body the server takes: no service key for all services', () => {
  assert.deepEqual(checkDraft('env', { name: 'GREETING', value: 'hi\nthere', service: '' }), {
    body: { name: 'GREETING', value: 'hi\nthere' },
  });
  assert.deepEqual(checkDraft('env', { name: 'GREETING', value: '', service: 'web' }), {
    body: { name: 'GREETING', value: '', service: 'web' },
  });
  assert.deepEqual(checkDraft('config', { name: 'FLOTILLA_SUPERVISOR_DELTA', value: '1', service: '' }), {
    body: { name: 'FLOTILLA_SUPERVISOR_DELTA', value: '1' },
  });
});

test("a draft the server would refuse is refused field by field, in the protocol schema's words", () => {
  assert.deepEqual(checkDraft('config', { name: 'SUPERVISOR_DELTA', value: '1', service: '' }).errors, {
    name: 'Name: FLOTILLA_, BALENA_ or RESIN_, then letters, digits and "_"',
  });
  assert.deepEqual(checkDraft('env', { name: '1ABC', value: 'x', service: '' }).errors, {
    name: 'Name: letters, digits and "_", not starting with a digit',
  });
  const tooLong = checkDraft('env', { name: 'BIG', value: 'x'.repeat(64 * 1024 + 1), service: 'no spaces' }).errors;
  assert.deepEqual(Object.keys(tooLong ?? {}).sort(), ['service', 'value']);
  assert.match(tooLong?.value ?? '', /^Value: /);
  assert.equal(checkDraft('env', { name: 'BIG', value: 'x'.repeat(64 * 1024), service: '' }).errors, undefined);
});

test('sources read as the pages say them, and only device ones are the device own', () => {
  assert.equal(sourceLabel('fleet-service', 'web'), 'fleet · web');
  assert.equal(sourceLabel('device-service', 'web'), 'device · web');
  assert.equal(sourceLabel('release', 'web'), 'release');
  assert.deepEqual(
    (['release', 'fleet', 'device', 'fleet-service', 'device-service'] as const).filter(isDeviceSource),
    ['device', 'device-service'],
  );
});

test('the services of releases, each once, sorted', () => {
  const release = (...names: string[]) => ({
    services: names.map((name, id) => ({ id, name, image: '', imageId: id })),
  });
  assert.deepEqual(servicesOf([release('web', 'db'), release('web', 'cache'), release()]), ['cache', 'db', 'web']);
});

test('previews: short one-line values whole, else the start and a sign there is more', () => {
  assert.deepEqual(previewOf('hello'), { text: 'hello', more: false });
  assert.deepEqual(previewOf('x'.repeat(80)), { text: 'x'.repeat(80), more: false });
  assert.deepEqual(previewOf('x'.repeat(81)), { text: `${'x'.repeat(80)}…`, more: true });
  assert.deepEqual(previewOf('-----BEGIN\nabc'), { text: '-----BEGIN…', more: true });
});
