import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import type { DeviceReport, StateReport } from '@flotilla/protocol';
import { tempDir, waitFor } from '@flotilla/testkit';
import type { ControlPlane } from '../control-plane/control-plane.js';
import { openStore } from '../store/store.js';
import { Reporter } from './reporter.js';

/** A control plane that only records reports (the rest is not called by the reporter). */
function recordingControlPlane(sent: Array<{ at: number; body: StateReport }>, failFirst = 0): ControlPlane {
  let failures = failFirst;
  const unused = async (): Promise<never> => {
    throw new Error('not used');
  };
  return {
    register: unused,
    findSelf: unused,
    keyExchange: unused,
    fetchTarget: unused,
    report: async (body) => {
      if (failures-- > 0) throw new Error('offline');
      sent.push({ at: Date.now(), body });
    },
  };
}

describe('Reporter', () => {
  it('sends the first report at once, then diffs only, at most once per interval; ACKed state survives a restart', async () => {
    const dir = await tempDir();
    const store = openStore(dir.path);
    const sent: Array<{ at: number; body: StateReport }> = [];
    let status = 'Idle';
    const abort = new AbortController();
    const reporter = new Reporter({
      controlPlane: recordingControlPlane(sent, 1),
      store,
      log: pino({ level: 'silent' }),
      uuid: 'u',
      deviceApiKey: 'k',
      minIntervalMs: 400,
      build: async (): Promise<DeviceReport> => ({ status, os_version: 'x' }),
    });
    try {
      const started = Date.now();
      reporter.start(abort.signal);
      // The first attempt fails (offline); the retry sends everything.
      await waitFor('the first report sent', () => sent.length >= 1, { timeoutMs: 5_000 });
      assert.deepEqual(sent[0]?.body, { u: { status: 'Idle', os_version: 'x' } });
      assert.ok((sent[0]?.at ?? 0) - started < 5_000);
      for (const s of ['Updating', 'Idle', 'Updating']) {
        status = s;
        reporter.trigger();
        // Changes 50 ms apart, inside one 400 ms window: the spacing is the input under test, not a wait.
        await new Promise((r) => setTimeout(r, 50));
      }
      await waitFor(
        'the last change sent and acknowledged',
        () => sent.length >= 2 && store.getLastReport()?.status === 'Updating',
        { timeoutMs: 5_000 },
      );
      for (let i = 1; i < sent.length; i++)
        assert.ok((sent[i]?.at ?? 0) - (sent[i - 1]?.at ?? 0) >= 390, 'rate limited');
      assert.deepEqual(sent.at(-1)?.body, { u: { status: 'Updating' } }, 'only the changed key');
      assert.deepEqual(store.getLastReport(), { status: 'Updating', os_version: 'x' });
    } finally {
      abort.abort();
      await reporter.stopped();
      store.close();
      await dir.remove();
    }
  });
});
