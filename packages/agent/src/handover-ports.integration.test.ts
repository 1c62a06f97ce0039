import assert from 'node:assert/strict';
import { request } from 'node:http';
import { describe, it } from 'node:test';
import { LABELS } from '@flotilla/protocol';
import { ensureBusyboxImage, freePort, run, waitFor } from '@flotilla/testkit';
import { cleanup, harness, ourContainers, reportedDone, startHarnessAgent } from './test-support/fixtures.js';

/** busybox httpd answering `<marker>` on port 80; exits at once on SIGTERM (so the stop is not the 10 s timeout). */
async function buildHttpdImage(tag: string, marker: string): Promise<void> {
  const base = await ensureBusyboxImage();
  const script = `mkdir -p /www && echo ${marker} > /www/index.html && httpd -f -p 80 -h /www & pid=$!; trap 'kill $pid; exit 0' TERM; wait`;
  const dockerfile = [
    `FROM ${base}`,
    `RUN echo ${Math.random().toString(16).slice(2)} > /.nonce`,
    `CMD ["sh", "-c", ${JSON.stringify(script)}]`,
  ].join('\n');
  await run('docker', ['build', '-q', '-t', tag, '-'], { input: dockerfile });
}

/** One GET of the published port: the body, or undefined when nothing answered. */
function get(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/', timeout: 500, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(res.statusCode === 200 ? body.trim() : undefined));
      res.on('error', () => resolve(undefined));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

describe('hand-over with a published host port (real engine, real port)', () => {
  it('falls back to stop-then-start just before the new container starts; the gap in answers is measured', async () => {
    const h = await harness();
    const nonce = Math.random().toString(16).slice(2, 8);
    const r1 = `flotilla-agent-it/handover-port:r1-${nonce}`;
    const r2 = `flotilla-agent-it/handover-port:r2-${nonce}`;
    const hostPort = await freePort();
    const agent = await startHarnessAgent(h);
    const uuid = agent.state().uuid;
    let probing = true;
    try {
      await Promise.all([buildHttpdImage(r1, 'r1'), buildHttpdImage(r2, 'r2')]);
      const labels = { [LABELS.updateStrategy]: 'hand-over' };
      const release = (image: string) =>
        h.cp.release({ services: { main: { image, labels, compose: { ports: [`${hostPort}:80`] } } } });
      const c1 = await release(r1);
      agent.triggerUpdate();
      await waitFor('release 1 answers on the port', async () => (await get(hostPort)) === 'r1', { timeoutMs: 30_000 });

      // Probe the port back to back; every answer is stamped, so the longest silence is the update's downtime.
      const answers: Array<{ at: number; body: string }> = [];
      const probe = (async () => {
        while (probing) {
          const body = await get(hostPort);
          if (body !== undefined) answers.push({ at: performance.now(), body });
          else await new Promise((r) => setTimeout(r, 5));
        }
      })();
      const c2 = await release(r2);
      agent.triggerUpdate();
      await waitFor('release 2 done', () => reportedDone(h, uuid, c2), { timeoutMs: 60_000 });
      await waitFor('release 2 answers on the port', () => answers.at(-1)?.body === 'r2', { timeoutMs: 10_000 });
      probing = false;
      await probe;

      assert.notEqual(c1, c2);
      const firstR2 = answers.findIndex((a) => a.body === 'r2');
      const lastR1 = answers[firstR2 - 1];
      const firstNew = answers[firstR2];
      assert.ok(lastR1 && firstNew && lastR1.body === 'r1', 'r1 answered until the switch');
      assert.ok(
        answers.slice(firstR2).every((a) => a.body === 'r2'),
        'once r2 answers, r1 never answers again',
      );
      const gapMs = Math.round(firstNew.at - lastR1.at);
      console.log(`hand-over fallback: ${gapMs} ms without an answer on host port ${hostPort}`);
      // One graceful stop (httpd exits on TERM) and one start: well under the 10 s stop timeout.
      assert.ok(gapMs < 5_000, `gap ${gapMs} ms`);
      const after = await ourContainers(h.namespace);
      assert.equal(after.length, 1, 'the old container is gone');
      const { items } = (await h.cp.api('GET', `/api/v1/devices/${uuid}/logs?tail=200`)) as {
        items: Array<{ message: string; isSystem: boolean }>;
      };
      assert.ok(
        items.some((l) => l.isSystem && l.message.includes('fell back') && l.message.includes(`${hostPort}->80/tcp`)),
        'the device logs say hand-over fell back, naming the port',
      );
    } finally {
      probing = false;
      await agent.stop();
      await cleanup(h.namespace, [r1, r2]);
      await h.remove();
    }
  });
});
