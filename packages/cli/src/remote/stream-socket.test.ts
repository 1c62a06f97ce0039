import assert from 'node:assert/strict';
import { test } from 'node:test';
import { USER_ROUTES } from '@flotilla/protocol';
import { streamError, streamUrl } from './stream-socket.js';

test('stream URLs: ws for http, wss for https, a path prefix kept, parameters encoded, absent ones left out', () => {
  assert.equal(
    streamUrl('http://127.0.0.1:8080', USER_ROUTES.deviceShell, 'probe-1', { tty: '1', cols: 80, service: undefined }),
    'ws://127.0.0.1:8080/api/v1/devices/probe-1/shell?tty=1&cols=80',
  );
  assert.equal(
    streamUrl('https://fleet.example.com/flotilla/', USER_ROUTES.deviceTunnel, 'kitchen pi', { port: 22 }),
    'wss://fleet.example.com/flotilla/api/v1/devices/kitchen%20pi/tunnel?port=22',
  );
  assert.equal(
    new URL(streamUrl('http://h', USER_ROUTES.deviceShell, 'd', { command: 'echo a&b=c; ls #x' })).searchParams.get(
      'command',
    ),
    'echo a&b=c; ls #x',
  );
  assert.throws(() => streamUrl('ftp://h', USER_ROUTES.deviceShell, 'd', {}), /neither http nor https/);
});

test('stream errors: a known code kept, an unknown one kept in the message', () => {
  const known = streamError({ code: 'SERVICE_NOT_FOUND', message: 'no service web' });
  assert.equal(known.code, 'SERVICE_NOT_FOUND');
  assert.equal(known.message, 'no service web');
  const unknown = streamError({ code: 'SOMETHING_NEW', message: 'a newer agent said so' });
  assert.equal(unknown.code, 'UNEXPECTED_RESPONSE');
  assert.equal(unknown.message, 'a newer agent said so [SOMETHING_NEW]');
});
