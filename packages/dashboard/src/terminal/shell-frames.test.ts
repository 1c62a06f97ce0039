import assert from 'node:assert/strict';
import { test } from 'node:test';
import { STREAM_CHANNEL, channelFrame, streamControlSchema } from '@flotilla/protocol';
import {
  endedStatus,
  readShellMessage,
  resizeMessage,
  shellUrl,
  stdinBinaryFrame,
  stdinFrame,
} from './shell-frames.js';

const bytes = (frame: Uint8Array) => [...frame];

test('keystrokes become one stdin frame of UTF-8; binary input keeps its bytes', () => {
  assert.deepEqual(bytes(stdinFrame('ls\r')), [STREAM_CHANNEL.stdin, 0x6c, 0x73, 0x0d]);
  assert.deepEqual(bytes(stdinFrame('é')), [0, 0xc3, 0xa9]);
  assert.deepEqual(bytes(stdinBinaryFrame('\x1b[M\xff')), [0, 0x1b, 0x5b, 0x4d, 0xff]);
  assert.deepEqual(bytes(stdinFrame('')), [0]);
});

test('resize is the protocol’s control message', () => {
  assert.deepEqual(streamControlSchema.parse(JSON.parse(resizeMessage(120, 40))), {
    type: 'resize',
    cols: 120,
    rows: 40,
  });
});

test('stdout and stderr frames are output; stdin, unknown channels and empty frames are ignored', () => {
  const toBuffer = (frame: Uint8Array) => frame.slice().buffer;
  const out = readShellMessage(toBuffer(channelFrame(STREAM_CHANNEL.stdout, new TextEncoder().encode('42\r\n'))));
  assert.equal(out?.kind, 'output');
  assert.equal(out?.kind === 'output' && new TextDecoder().decode(out.data), '42\r\n');
  const err = readShellMessage(toBuffer(channelFrame(STREAM_CHANNEL.stderr, Uint8Array.of(7))));
  assert.deepEqual(err?.kind === 'output' && [...err.data], [7]);
  assert.equal(readShellMessage(toBuffer(channelFrame(STREAM_CHANNEL.stdin, Uint8Array.of(1)))), undefined);
  assert.equal(readShellMessage(Uint8Array.of(9, 1, 2).buffer), undefined);
  assert.equal(readShellMessage(new ArrayBuffer(0)), undefined);
});

test('text frames are control messages when the protocol knows them', () => {
  assert.deepEqual(readShellMessage('{"type":"exit","code":3}'), {
    kind: 'control',
    control: { type: 'exit', code: 3 },
  });
  assert.deepEqual(readShellMessage('{"type":"ready"}'), { kind: 'control', control: { type: 'ready' } });
  assert.equal(readShellMessage('{"type":"teleport"}'), undefined);
  assert.equal(readShellMessage('not json'), undefined);
});

test('the shell URL is on the page’s origin, ws or wss as the page is, with the query', () => {
  assert.equal(
    shellUrl({ protocol: 'https:', host: 'flotilla.example:8443' }, 'ab/c', { tty: '1', cols: 80, rows: 24 }),
    'wss://flotilla.example:8443/api/v1/devices/ab%2Fc/shell?tty=1&cols=80&rows=24',
  );
  assert.equal(
    shellUrl({ protocol: 'http:', host: '127.0.0.1:3000' }, 'a1', { service: 'web', tty: '1', command: undefined }),
    'ws://127.0.0.1:3000/api/v1/devices/a1/shell?service=web&tty=1',
  );
});

test('the status line says the exit status, or the error with its code, as text', () => {
  assert.equal(endedStatus({ type: 'exit', code: 3 }), 'The shell exited with status 3.');
  assert.equal(
    endedStatus({ type: 'error', code: 'NOT_FOUND', message: '<b>no</b> service db' }),
    '<b>no</b> service db (NOT_FOUND)',
  );
  assert.equal(endedStatus(undefined), 'The connection to the device closed.');
});
