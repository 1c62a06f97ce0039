import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TargetOs } from '@flotilla/protocol';
import pino from 'pino';
import { OS_RETRY_AFTER_FAILURE_MS, OsFollower, osDecision } from './os-follower.js';
import { IDLE, type OsTarget, type UpdatePhase, type UpdateState } from './update-machine.js';

const API = 'https://api.example.test:8443';
const HASH_2 = 'b'.repeat(64);
const target: TargetOs = { version: '2.0.0', url: `/device/v1/u/os-images/${HASH_2}`, sha256: HASH_2, size: 4096 };
const started = { version: '2.0.0', url: `${API}/device/v1/u/os-images/${HASH_2}`, sha256: HASH_2, size: 4096 };

function state(phase: UpdatePhase, sha256: string): UpdateState {
  return {
    ...IDLE,
    phase,
    target: { version: sha256 === HASH_2 ? '2.0.0' : '1.0.0', url: 'file:///x', sha256, size: 1 },
    fromSlot: 'a',
    toSlot: 'b',
    attempts: 1,
    restarts: 0,
  };
}

describe('osDecision: what the target `os` asks of the updater', () => {
  const NOW = 10_000_000;
  const cases: Array<[string, TargetOs | undefined, UpdateState, number | undefined, 'start' | RegExp]> = [
    ['no os in the target', undefined, IDLE, undefined, /no OS target/],
    ['idle: the first update', target, IDLE, undefined, 'start'],
    ['another image committed', target, state('committed', 'a'.repeat(64)), undefined, 'start'],
    ['another image rolled back', target, state('rolled-back', 'a'.repeat(64)), undefined, 'start'],
    ['another image being written', target, state('writing', 'a'.repeat(64)), undefined, /writing/],
    ['this image on trial', target, state('trial', HASH_2), undefined, /trial/],
    ['this image armed', target, state('armed', HASH_2), undefined, /armed/],
    ['this image committed', target, state('committed', HASH_2), undefined, /committed/],
    ['this image rolled back: never again by itself', target, state('rolled-back', HASH_2), undefined, /rolled back/],
    ['this image failed, just started', target, state('failed', HASH_2), NOW - 1000, /later/],
    ['this image failed long ago', target, state('failed', HASH_2), NOW - OS_RETRY_AFTER_FAILURE_MS, 'start'],
    ['this image failed before this agent started', target, state('failed', HASH_2), undefined, 'start'],
  ];
  for (const [label, os, current, lastStarted, expected] of cases)
    it(label, () => {
      const decision = osDecision(os, current, API, lastStarted, NOW);
      if (expected === 'start') assert.deepEqual(decision, { start: started });
      else assert.match('wait' in decision ? decision.wait : 'started', expected);
    });

  it('a version the booted OS already is, flashed with it, is not written again; another one is', () => {
    assert.match(JSON.stringify(osDecision(target, IDLE, API, undefined, NOW, '2.0.0')), /is the one running/);
    assert.deepEqual(osDecision(target, IDLE, API, undefined, NOW, '1.0.0'), { start: started });
    // The same image already tried here follows its own history, whatever the booted OS says.
    assert.match(
      JSON.stringify(osDecision(target, state('rolled-back', HASH_2), API, undefined, NOW, '2.0.0')),
      /rolled back/,
    );
  });

  it('an absolute URL in the target is kept as it is', () => {
    const absolute = { ...target, url: 'https://mirror.example.test/os.img' };
    assert.deepEqual(osDecision(absolute, IDLE, API, undefined, NOW), { start: { ...started, url: absolute.url } });
  });
});

describe('OsFollower: when a failed update is tried again', () => {
  /** An updater that only records the starts it is asked for (the follower uses nothing else). */
  function updater(current: UpdateState) {
    const starts: OsTarget[] = [];
    return {
      starts,
      state: () => current,
      start: async (t: OsTarget) => {
        starts.push(t);
        return current;
      },
    };
  }

  it('an update given up before this start waits a retry interval from the start: no loop of restarts', () => {
    let now = 5_000_000;
    const given = {
      ...state('failed', HASH_2),
      restarts: 11,
      reason: { code: 'OS_UPDATE_RETRIES_EXHAUSTED', message: 'kept restarting' },
    } as UpdateState;
    const u = updater(given);
    const follower = new OsFollower(u, API, pino({ level: 'silent' }), '1.0.0', () => now);
    follower.follow(target);
    now += OS_RETRY_AFTER_FAILURE_MS - 1;
    follower.follow(target);
    assert.equal(u.starts.length, 0, 'not at once after the start');
    now += 1;
    follower.follow(target);
    assert.deepEqual(u.starts, [started]);
    follower.follow(target);
    assert.equal(u.starts.length, 1, 'and then once per interval');
  });

  it('another image is started at once, whatever failed before', () => {
    const u = updater(state('failed', 'a'.repeat(64)));
    new OsFollower(u, API, pino({ level: 'silent' }), '1.0.0', () => 1).follow(target);
    assert.deepEqual(u.starts, [started]);
  });
});
