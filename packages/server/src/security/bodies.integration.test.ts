import assert from 'node:assert/strict';
import { Agent, type IncomingHttpHeaders, request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { testDatabases } from '@flotilla/testkit';
import { answerData } from '../testing/answer-data.js';
import { AttackTally, basicAuth } from '../testing/attacks.js';
import { liveServerWithDevice, postDeviceLogs, type LiveDevice } from '../testing/live-server.js';
import { httpCall } from '../testing/tenants.js';

const MiB = 1024 * 1024;

/**
 * Sends `body` to `path` in 1 MiB writes and resolves with the status once the answer comes (the server may answer
 * and close before the body is all sent: that is the point), or 0 if the connection was cut without one.
 */
function sendBig(
  baseUrl: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body: Buffer,
  chunked: boolean,
  agent?: Agent,
): Promise<{ status: number; text: string; ms: number; connection: string | undefined; headers: IncomingHttpHeaders }> {
  const started = Date.now();
  return new Promise((resolve) => {
    let answered = false;
    const url = new URL(baseUrl);
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method,
        path,
        headers: chunked ? headers : { ...headers, 'content-length': String(body.length) },
        ...(agent ? { agent } : {}),
      },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        const answer = (text: string) => ({
          status: res.statusCode ?? 0,
          text,
          ms: Date.now() - started,
          connection: res.headers.connection,
          headers: res.headers,
        });
        res.on('end', () => resolve(answer(Buffer.concat(chunks).toString())));
        res.on('error', () => resolve(answer('')));
      },
    );
    req.on('error', () => {
      if (!answered) resolve({ status: 0, text: '', ms: Date.now() - started, connection: undefined, headers: {} });
    });
    let offset = 0;
    const writeMore = () => {
      while (offset < body.length) {
        const chunk = body.subarray(offset, offset + MiB);
        offset += chunk.length;
        if (!req.write(chunk)) {
          req.once('drain', writeMore);
          return;
        }
      }
      req.end();
    };
    writeMore();
  });
}

/** Highest resident set size of this process (the server runs in it) while `run` runs, sampled every 10 ms. */
async function peakRss<T>(run: () => Promise<T>): Promise<{ result: T; peak: number }> {
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 10);
  try {
    const result = await run();
    peak = Math.max(peak, process.memoryUsage.rss());
    return { result, peak };
  } finally {
    clearInterval(timer);
  }
}

const nested = (depth: number, open: string, close: string, inner = '1') =>
  `${open.repeat(depth)}${inner}${close.repeat(depth)}`;

for (const testDb of testDatabases()) {
  describe(`security: hostile bodies (${testDb.label})`, () => {
    let live: LiveDevice;
    before(async () => {
      live = await liveServerWithDevice(testDb);
    });
    after(() => live.close());

    const healthy = async () => {
      const health = await httpCall(live.server.url, 'GET', '/healthz');
      const fleets = await live.api('GET', '/api/v1/fleets');
      return health.status === 200 && fleets.status === 200;
    };

    test('a 50 MB body is refused with 413 PAYLOAD_TOO_LARGE on every kind of route, and the server stays up', async () => {
      const big = Buffer.alloc(50 * 1000 * 1000, 0x20);
      big.write('{"name":"', 0);
      big.write('"}', big.length - 2);
      const admin = { authorization: `Bearer ${live.apiKey}`, 'content-type': 'application/json' };
      const device = { authorization: `Bearer ${live.deviceKey}`, 'content-type': 'application/json' };
      const targets: Array<[string, string, Record<string, string>]> = [
        ['POST', '/api/v1/auth/login', { 'content-type': 'application/json' }],
        ['POST', '/api/v1/fleets', admin],
        ['PATCH', `/api/v1/devices/${live.uuid}`, admin],
        ['POST', `/api/v1/fleets/${live.slug}/env`, admin],
        [
          'POST',
          '/device/register',
          { authorization: 'Bearer unknown-provisioning-key', 'content-type': 'application/json' },
        ],
        ['PATCH', '/device/v3/state', device],
        ['PATCH', '/device/v3/tags', device],
      ];
      const tally = new AttackTally('bodies 50 MB');
      for (const [method, path, headers] of targets) {
        for (const chunked of [false, true]) {
          const res = await sendBig(live.server.url, method, path, headers, big, chunked);
          const code = (answerData(res.text, (name) => res.headers[name]) as { error?: { code?: string } } | undefined)
            ?.error?.code;
          tally.record(
            res.status === 413 && code === 'PAYLOAD_TOO_LARGE',
            `${method} ${path} ${chunked ? 'chunked' : 'with length'} → ${res.status} ${res.text.slice(0, 200)}`,
          );
        }
        assert.ok(await healthy(), `unhealthy after ${method} ${path}`);
      }
      tally.finish();
    });

    test('a 1 GiB gzip bomb on the log stream is refused quickly with bounded memory', async () => {
      // 1,024 gzip members of 1 MiB each: one valid gzip stream (members may be concatenated) of 1 GiB, 1 MB on
      // the wire. Zeros make one endless line; newlines make endless empty lines, each looked at.
      const tally = new AttackTally('gzip bomb');
      // One kept-alive connection, as a device's HTTP client keeps: what follows a refused bomb must not hang on it.
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const logHeaders = {
        authorization: `Bearer ${live.deviceKey}`,
        'content-type': 'application/x-ndjson',
        'content-encoding': 'gzip',
      };
      for (const fill of [0x00, 0x0a]) {
        const member = gzipSync(Buffer.alloc(MiB, fill), { level: 9 });
        const bomb = Buffer.concat(Array.from({ length: 1024 }, () => member));
        assert.equal(gunzipSync(Buffer.concat([member, member])).length, 2 * MiB, 'members concatenate');
        global.gc?.();
        const baseline = process.memoryUsage.rss();
        const { result, peak } = await peakRss(() =>
          sendBig(live.server.url, 'POST', `/device/v2/${live.uuid}/log-stream`, logHeaders, bomb, true, agent),
        );
        const grewMiB = Math.round((peak - baseline) / MiB);
        console.log(
          `security: gzip bomb of ${bomb.length} bytes (1 GiB of 0x${fill.toString(16)}): ${result.status} in ${result.ms} ms, RSS +${grewMiB} MiB`,
        );
        tally.record(
          result.status === 413 && result.ms < 6_000 && grewMiB < 200,
          `bomb 0x${fill.toString(16)} → ${result.status} in ${result.ms} ms, RSS +${grewMiB} MiB: ${result.text}`,
        );
        assert.ok(await healthy(), 'unhealthy after the bomb');
        // The rest of the bomb is never read, so the server must not keep the connection for another request.
        assert.equal(result.connection, 'close');
        const next = await Promise.race([
          sendBig(
            live.server.url,
            'POST',
            `/device/v2/${live.uuid}/log-stream`,
            logHeaders,
            gzipSync('{"message":"next","timestamp":1}\n'),
            false,
            agent,
          ),
          new Promise<{ status: number }>((resolve) => setTimeout(() => resolve({ status: -1 }), 10_000)),
        ]);
        assert.equal(next.status, 201, 'the next request on the same client waited behind the unread bomb');
      }
      agent.destroy();
      tally.finish();
      // The device can still send its logs.
      assert.equal(
        await postDeviceLogs(live.server.url, live.uuid, live.deviceKey, [{ message: 'after', timestamp: 1 }]),
        201,
      );
    });

    test('deeply nested bodies are a 400, never a 500 or a crash', async () => {
      const tally = new AttackTally('deep nesting');
      const shapes = [
        nested(200_000, '[', ']'),
        nested(100_000, '{"a":', '}'),
        `{"name":${nested(200_000, '[', ']')}}`,
        `{"name":"x","slug":"deep","organization":${nested(50_000, '{"a":', '}', '"x"')}}`,
      ];
      const admin = live.apiKey;
      for (const body of shapes) {
        for (const [method, path, key] of [
          ['POST', '/api/v1/fleets', admin],
          ['POST', `/api/v1/fleets/${live.slug}/releases`, admin],
          ['PATCH', '/device/v3/state', live.deviceKey],
        ] as const) {
          const res = await httpCall(live.server.url, method, path, {
            key,
            body,
            headers: { 'content-type': 'application/json' },
          });
          tally.record(res.status === 400, `${method} ${path} (${body.slice(0, 20)}…) → ${res.status} ${res.text}`);
        }
      }
      // A state report nested deep inside valid fields.
      const report = `{"${live.uuid}":{"apps":${nested(100_000, '{"a":', '}')}}}`;
      const res = await httpCall(live.server.url, 'PATCH', '/device/v3/state', {
        key: live.deviceKey,
        body: report,
        headers: { 'content-type': 'application/json' },
      });
      tally.record(res.status === 400, `deep report → ${res.status} ${res.text}`);
      // A log line nested deep costs the stream nothing: read (its unknown field dropped) or skipped, never fatal.
      const ndjson = `{"message":"fine","timestamp":1}\n{"message":"m","timestamp":1,"x":${nested(100_000, '[', ']')}}\n`;
      const logs = await sendBig(
        live.server.url,
        'POST',
        `/device/v2/${live.uuid}/log-stream`,
        {
          authorization: `Bearer ${live.deviceKey}`,
          'content-type': 'application/x-ndjson',
          'content-encoding': 'gzip',
        },
        gzipSync(ndjson),
        false,
      );
      tally.record(
        logs.status === 201 && JSON.parse(logs.text).accepted + JSON.parse(logs.text).rejected === 2,
        `deep log line → ${logs.status} ${logs.text}`,
      );
      tally.finish();
      assert.ok(await healthy());
    });

    test('__proto__ and constructor keys pollute no prototype and break no answer', async () => {
      const protoKeys = Object.getOwnPropertyNames(Object.prototype).sort();
      const pollution = '{"polluted":"yes"}';
      const tally = new AttackTally('prototype keys');
      const send = async (method: string, path: string, key: string, body: string, type = 'application/json') => {
        const authorization = key.startsWith('Basic ') ? key : `Bearer ${key}`;
        const res = await httpCall(live.server.url, method, path, {
          body,
          headers: { authorization, 'content-type': type },
        });
        const clean = ({} as Record<string, unknown>).polluted === undefined;
        tally.record(res.status < 500 && clean, `${method} ${path} ${body.slice(0, 80)} → ${res.status} ${res.text}`);
        return res;
      };
      const admin = live.apiKey;
      for (const key of ['__proto__', 'constructor', 'prototype']) {
        const evil = key === 'constructor' ? `{"prototype":${pollution}}` : pollution;
        await send('POST', '/api/v1/fleets', admin, `{"name":"p-${key}","${key}":${evil}}`);
        await send('PATCH', `/api/v1/devices/${live.uuid}`, admin, `{"${key}":${evil},"name":"proto-device"}`);
        await send(
          'POST',
          `/api/v1/fleets/${live.slug}/releases`,
          admin,
          `{"composition":{"services":{"main":{"image":"a/b","environment":{"${key}":"x"},"labels":{"${key}":"y"}}},"${key}":${evil}}}`,
        );
        await send(
          'PATCH',
          '/device/v3/state',
          live.deviceKey,
          `{"${live.uuid}":{"${key}":${evil},"status":"Idle","apps":{"${key}":${evil}}}}`,
        );
        await send('PATCH', '/device/v3/tags', live.deviceKey, `{"${live.uuid}":{"${key}":"x","ok":"y"}}`);
        await send(
          'POST',
          `/device/v2/${live.uuid}/log-stream`,
          live.deviceKey,
          `{"message":"m","timestamp":1,"${key}":${evil}}\n{"${key}":${evil}}\n`,
          'application/x-ndjson',
        );
        await send('POST', `/api/v1/devices/${live.uuid}/tags`, admin, `{"key":"${key}","value":"x"}`);
        await send(
          'PUT',
          `/v2/${live.slug}/main/manifests/proto`,
          basicAuth('admin', admin),
          `{"schemaVersion":2,"${key}":${evil},"layers":[{"${key}":${evil}}]}`,
          'application/vnd.oci.image.manifest.v1+json',
        );
      }
      // A variable is a name in a body's value, not a key, so the JSON reader keeps it; assigned into the
      // environment object of the target state, "__proto__" would be lost without a word. It must be refused or
      // delivered, never accepted and dropped.
      const release = await live.api('POST', `/api/v1/fleets/${live.slug}/releases`, {
        composition: { services: { main: { image: 'a/b' } } },
        status: 'success',
      });
      assert.equal(release.status, 201);
      for (const scope of [`fleets/${live.slug}`, `devices/${live.uuid}`]) {
        for (const name of ['__proto__', 'constructor', 'hasOwnProperty']) {
          const set = await live.api('POST', `/api/v1/${scope}/env`, { name, value: `value of ${name}` });
          const state = await httpCall(live.server.url, 'GET', `/device/v3/${live.uuid}/state`, {
            key: live.deviceKey,
          });
          const delivered = state.text.includes(`"${name}":"value of ${name}"`);
          tally.record(
            (set.status === 400 && set.data.error.code === 'VALIDATION_FAILED') || (set.status === 200 && delivered),
            `${scope} env ${name} → ${set.status}, delivered: ${delivered}`,
          );
        }
      }
      tally.finish('requests', 'harmless (no pollution, no 500, no silently lost variable)');
      assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), protoKeys);
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
      // Everything still answers, and a device's target state is still built.
      assert.ok(await healthy());
      assert.equal(
        (await httpCall(live.server.url, 'GET', `/device/v3/${live.uuid}/state`, { key: live.deviceKey })).status,
        200,
      );
    });
  });
}
