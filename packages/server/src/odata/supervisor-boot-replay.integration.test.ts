import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, test } from 'node:test';
import { createGzip, gunzipSync } from 'node:zlib';
import {
  configJsonSchema,
  decodeRootCa,
  generateDeviceUuid,
  generateKey,
  targetStateSchema,
  type TargetDevice,
} from '@flotilla/protocol';
import { testDatabases, waitFor } from '@flotilla/testkit';
import { getRegisterDevice } from 'balena-register-device';
import { type AnyObject, PinejsClientCore, StatusError } from 'pinejs-client-core';
import { selfSignedServer } from '../testing/live-server.js';
import { httpCall } from '../testing/tenants.js';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

const SUPERVISOR_AGENT = (version: string) => `Supervisor/${version} (Linux; balenaOS 6.1.0; prod)`;

/** One HTTPS request trusting only `ca`, gzip accepted as the Supervisor's HTTP clients ask for it. */
function supervisorCall(
  url: string,
  ca: string[],
  init: { method?: string; headers?: Record<string, string>; body?: string },
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      { method: init.method ?? 'GET', ca, headers: { 'accept-encoding': 'gzip', ...init.headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const raw = Buffer.concat(chunks);
          const text = (res.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString();
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text });
        });
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error(`no answer from ${url} within 10 s`)));
    req.on('error', reject);
    req.end(init.body);
  });
}

/**
 * The Supervisor's API client: pinejs-client-core (which builds every URL and body) with the request step of
 * pinejs-client-fetch, the client the Supervisor binds to `<apiEndpoint>/v6/` (v14 to v17.6.20) or `/v7/` (later):
 * the body is parsed as JSON when it is JSON, and any status from 400 up throws `Request error: <body>`.
 */
class SupervisorPine extends PinejsClientCore {
  constructor(
    apiPrefix: string,
    private readonly ca: string[],
    passthrough: AnyObject,
  ) {
    super({ apiPrefix, passthrough });
  }

  async _request({ url, body, method, headers }: { url: string; body?: AnyObject; method: string } & AnyObject) {
    const sent = body != null && typeof body === 'object' ? JSON.stringify(body) : (body as string | undefined);
    const answer = await supervisorCall(url, this.ca, {
      method,
      headers: { ...headers, ...(sent === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(sent === undefined ? {} : { body: sent }),
    });
    let parsed: unknown = answer.text;
    try {
      parsed = JSON.parse(answer.text);
    } catch {
      // a plain-text body (PATCH answers `OK`)
    }
    if (answer.status >= 400) throw new StatusError(`Request error: ${parsed as string}`, answer.status);
    return parsed as NonNullable<unknown>;
  }
}

/** The Supervisor's `deviceConfig.formatConfigKeys`: BALENA_ and RESIN_ prefixes dropped. */
const unprefixed = (config: Record<string, string>) =>
  Object.fromEntries(Object.entries(config).map(([k, v]) => [k.replace(/^(BALENA|RESIN)_/, ''), v]));

/**
 * A balena Supervisor's first boot against a server with its own CA, in the order and with the request shapes of
 * balena-supervisor v14 to v19 (src/lib/api-helper.ts provision, src/api-binder/index.ts pinDevice and
 * reportInitialEnv, src/api-binder/poll.ts, src/api-binder/report.ts, src/logging/balena-backend.ts). Each answer is
 * checked as the Supervisor checks it: an answer it would stop or loop on fails the test.
 */
for (const testDb of testDatabases())
  describe(`a balena Supervisor first boot over HTTPS with the CA from config.json (${testDb.label})`, () => {
    let running: Awaited<ReturnType<typeof selfSignedServer>>;
    let dropDatabase: () => Promise<void>;
    before(async () => {
      const created = await testDb.create();
      dropDatabase = created.drop;
      running = await selfSignedServer('flotilla-boot-replay-', created.url ? { databaseUrl: created.url } : {});
    });
    after(async () => {
      await running?.close();
      await dropDatabase?.();
    });

    for (const { version, prefix, pinField } of [
      { version: '17.1.0', prefix: '/v6/', pinField: 'should_be_running__release' },
      { version: '19.0.5', prefix: '/v7/', pinField: 'is_pinned_on__release' },
    ] as const) {
      test(`Supervisor ${version}: register, pin, config report, target state, state report, log stream`, async () => {
        const { server } = running;
        const plain = server.plainUrl ?? '';
        const admin = server.admin?.apiKey ?? '';
        const user = async (method: string, path: string, body?: unknown) => {
          const res = await httpCall(plain, method, path, { key: admin, body });
          assert.ok(res.status < 300, `${method} ${path}: ${res.status} ${res.text}`);
          return res.data;
        };
        const slug = `boot${version.replaceAll('.', '')}`;
        await user('POST', '/api/v1/fleets', { name: slug, slug });
        // A fleet-wide setting: the Supervisor must not report its own value for it.
        await user('POST', `/api/v1/fleets/${slug}/config`, { name: 'BALENA_HOST_CONFIG_dtoverlay', value: 'vc4-kms' });
        const release = await user('POST', `/api/v1/fleets/${slug}/releases`, {
          composition: { services: { main: { image: 'main' } } },
          images: { main: `registry.example/${slug}/main@sha256:${'a'.repeat(64)}` },
          status: 'success',
        });
        const config = configJsonSchema.parse(await user('POST', `/api/v1/fleets/${slug}/config-json`, {}));
        const ca = decodeRootCa(config.balenaRootCA ?? '') ?? [];
        assert.equal(ca.length, 1, 'config.json carries one CA');
        const api = config.apiEndpoint ?? '';
        assert.match(api, /^https:/);
        const provisioningApiKey = config.provisioningApiKey ?? config.apiKey ?? '';
        const uuid = generateDeviceUuid();
        const deviceApiKey = generateKey();
        const agent = { 'User-Agent': SUPERVISOR_AGENT(version) };

        // 1. Registration (balena-register-device over the Supervisor's `request` with json: true); 201 or it retries.
        const { register } = getRegisterDevice({
          request: {
            send: async (options: AnyObject) => {
              const res = await supervisorCall(`${options.baseUrl}${options.url}`, ca, {
                method: options.method,
                headers: { ...agent, ...options.headers, 'content-type': 'application/json' },
                body: JSON.stringify(options.body),
              });
              // `request` with json: true parses a JSON body and keeps any other as its text (error answers here).
              let body: unknown = res.text;
              try {
                body = JSON.parse(res.text || 'null');
              } catch {}
              return { statusCode: res.status, body };
            },
          },
        });
        const device = await register({
          applicationId: Number(config.applicationId),
          uuid,
          deviceType: config.deviceType ?? 'generic-amd64',
          provisioningApiKey,
          deviceApiKey,
          apiEndpoint: api,
          supervisorVersion: version,
          osVersion: 'balenaOS 6.1.0',
          osVariant: 'prod',
        });
        assert.equal(typeof device.id, 'number', 'provision() keeps `device.id` as deviceId');
        const pine = new SupervisorPine(new URL(prefix, api).href, ca, { headers: { ...agent } });

        // 1b. A registration whose answer was lost is retried: 409 (isHttpConflictError), then the key exchange —
        // fetchDevice by uuid with the device key ($select id), and with the provisioning key, then
        // POST /api-key/device/<id>/device-key, which must answer exactly 200.
        const again = await register({
          applicationId: Number(config.applicationId),
          uuid,
          deviceType: config.deviceType ?? 'generic-amd64',
          provisioningApiKey,
          deviceApiKey,
          apiEndpoint: api,
        }).then(
          () => assert.fail('a second registration of the UUID succeeded'),
          (e: { response?: { statusCode?: number } }) => e,
        );
        assert.equal(again.response?.statusCode, 409, 'the Supervisor goes to the key exchange only on a 409');
        for (const key of [deviceApiKey, provisioningApiKey]) {
          const [self] = (await pine.get({
            resource: 'device',
            options: { $select: 'id', $filter: { uuid } },
            passthrough: { headers: { Authorization: `Bearer ${key}` } },
          })) as { id: number }[];
          assert.deepEqual(self, { id: device.id });
        }
        const exchanged = await supervisorCall(`${api}/api-key/device/${device.id}/device-key`, ca, {
          method: 'POST',
          headers: { ...agent, Authorization: `Bearer ${provisioningApiKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({ apiKey: deviceApiKey }),
        });
        assert.equal(exchanged.status, 200, exchanged.text);
        // From here every call carries the device key (balenaApi.passthrough.headers.Authorization).
        pine.passthrough.headers.Authorization = `Bearer ${deviceApiKey}`;

        // 2. Target state as poll.ts fetches it (If-None-Match of the cached ETag; 304 only when it has one).
        let etag: string | undefined;
        let target: TargetDevice | undefined;
        const fetchTarget = async () => {
          const res = await supervisorCall(`${api}/device/v3/${uuid}/state`, ca, {
            headers: { ...agent, Authorization: `Bearer ${deviceApiKey}`, ...(etag ? { 'If-None-Match': etag } : {}) },
          });
          if (res.status === 304 && etag) return target as TargetDevice;
          assert.ok(res.status >= 200 && res.status < 300, `target state: ${res.status} ${res.text}`);
          assert.ok(res.headers.etag, 'an ETag the Supervisor caches');
          etag = res.headers.etag;
          target = targetStateSchema.parse(JSON.parse(res.text))[uuid];
          assert.ok(target, 'the target state is keyed by the device UUID');
          return target;
        };

        // 3. pinDevice (a preloaded release): the release by fleet, commit and status, target state, then the pin.
        const found = await pine.get({
          resource: 'release',
          options: {
            $filter: {
              belongs_to__application: Number(config.applicationId),
              commit: release.commit,
              status: 'success',
            },
            $select: 'id',
          },
        });
        const releaseId = (found as { id?: number }[])[0]?.id;
        assert.equal(typeof releaseId, 'number', 'release?.[0]?.id, or the Supervisor skips the pin');
        assert.ok((await fetchTarget()).config, 'the target names a config object');
        await pine.patch({ resource: 'device', id: device.id, body: { [pinField]: releaseId } });

        // 4. reportInitialEnv: every current setting the target lacks and that differs from the default, RESIN_-named.
        const current: Record<string, string> = {
          SUPERVISOR_POLL_INTERVAL: '120000', // config.json appUpdatePollInterval
          SUPERVISOR_PERSISTENT_LOGGING: 'true',
          SUPERVISOR_VPN_CONTROL: 'true',
          SUPERVISOR_LOCAL_MODE: 'false',
          HOST_CONFIG_gpu_mem: '16', // config.txt
          HOST_CONFIG_dtoverlay: 'vc4-fkms-v3d',
        };
        const defaults: Record<string, string> = {
          SUPERVISOR_POLL_INTERVAL: '900000',
          SUPERVISOR_PERSISTENT_LOGGING: 'false',
          SUPERVISOR_VPN_CONTROL: 'true',
          SUPERVISOR_LOCAL_MODE: 'false',
        };
        const targetConfig = unprefixed((await fetchTarget()).config);
        assert.equal(targetConfig.SUPERVISOR_POLL_INTERVAL, undefined, 'no invented default the report would skip');
        const reported: Record<string, string> = {};
        for (const [key, value] of Object.entries(current)) {
          if (targetConfig[key] == null && value !== defaults[key]) {
            await pine.post({
              resource: 'device_config_variable',
              body: { value, device: device.id, name: `RESIN_${key}` },
            });
            reported[`RESIN_${key}`] = value;
          }
        }
        assert.deepEqual(Object.keys(reported).sort(), [
          'RESIN_HOST_CONFIG_gpu_mem',
          'RESIN_SUPERVISOR_PERSISTENT_LOGGING',
          'RESIN_SUPERVISOR_POLL_INTERVAL',
        ]);
        // As on balena, a POST never overwrites a value set meanwhile: 409, and the Supervisor's retry of the report
        // re-reads the target, finds the name there and skips it.
        const twice = await pine
          .post({
            resource: 'device_config_variable',
            body: { value: '1', device: device.id, name: 'RESIN_HOST_CONFIG_gpu_mem' },
          })
          .then(
            () => assert.fail('a second POST of the name succeeded'),
            (e: StatusError) => e,
          );
        assert.equal(twice.statusCode, 409);
        assert.match(twice.message, /unique/i, 'pinejs-client upsert PATCHes only on a 409 saying "unique"');
        // reportInitialName (initialDeviceName in config.json)
        await pine.patch({ resource: 'device', id: device.id, body: { device_name: `first-${slug}` } });

        // 5. The next poll (with the cached ETag) sees fleet < device settings, and nothing else.
        const after = await fetchTarget();
        // The Supervisor reads names without their BALENA_/RESIN_ prefix (the server may spell them BALENA_).
        assert.deepEqual(
          unprefixed(after.config),
          unprefixed({ BALENA_HOST_CONFIG_dtoverlay: 'vc4-kms', ...reported }),
        );
        assert.equal(after.name, `first-${slug}`);
        const apps = Object.values(after.apps);
        assert.equal(apps.length, 1, "the fleet's app");
        assert.deepEqual(Object.keys(apps[0]?.releases ?? {}), [release.commit], 'the pinned release is the target');
        const pinned = await httpCall(plain, 'GET', `/api/v1/devices/${uuid}`, { key: admin });
        assert.equal(pinned.data.pinnedRelease, release.commit, 'the pin holds');
        const unchanged = await supervisorCall(`${api}/device/v3/${uuid}/state`, ca, {
          headers: { ...agent, Authorization: `Bearer ${deviceApiKey}`, 'If-None-Match': etag ?? '' },
        });
        assert.equal(unchanged.status, 304, 'an unchanged target is a 304 to the cached ETag');

        // 6. State report (report.ts: request.patch json: true; any 2xx).
        const report = await supervisorCall(`${api}/device/v3/state`, ca, {
          method: 'PATCH',
          headers: { ...agent, Authorization: `Bearer ${deviceApiKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({
            [uuid]: {
              api_port: 48484,
              api_secret: generateKey(),
              os_version: 'balenaOS 6.1.0',
              os_variant: 'prod',
              supervisor_version: version,
              provisioning_progress: null,
              provisioning_state: '',
              status: 'Idle',
              ip_address: '192.168.1.20',
              mac_address: '02:42:ac:11:00:02',
              update_pending: false,
              update_downloaded: false,
              update_failed: false,
              local_mode: false,
              apps: {},
              config: unprefixed(after.config),
            },
          }),
        });
        assert.ok(report.status >= 200 && report.status < 300, `state report: ${report.status} ${report.text}`);

        // 7. Device tags (fetchDeviceTags): id, tag_key, value by device.
        assert.deepEqual(
          await pine.get({
            resource: 'device_tag',
            options: { $select: ['id', 'tag_key', 'value'], $filter: { device: device.id } },
          }),
          [],
        );

        // 8. The log stream (balena-backend.ts): headers flushed, gzip chunks with a sync flush, and any answer while
        // it is open counts as a failure. Lines must be stored while the request is still open.
        const streamAnswer: { status?: number } = {};
        const logReq = httpsRequest(`${api}/device/v2/${uuid}/log-stream`, {
          method: 'POST',
          ca,
          headers: {
            ...agent,
            Authorization: `Bearer ${deviceApiKey}`,
            'Content-Type': 'application/x-ndjson',
            'Content-Encoding': 'gzip',
          },
        });
        const ended = new Promise<number>((resolve, reject) => {
          logReq.on('response', (res) => {
            streamAnswer.status = res.statusCode ?? 0;
            res.resume();
            resolve(streamAnswer.status);
          });
          logReq.on('error', reject);
        });
        logReq.flushHeaders();
        const gzip = createGzip();
        gzip.pipe(logReq);
        const line = { message: `booted ${version}`, timestamp: Date.now(), isSystem: true, isStdErr: false };
        gzip.write(`${JSON.stringify(line)}\n`);
        gzip.flush();
        await waitFor(
          'the line stored while the stream is open',
          async () => {
            const logs = await httpCall(plain, 'GET', `/api/v1/devices/${uuid}/logs`, { key: admin });
            return logs.data.items.some((l: { message: string }) => l.message === line.message);
          },
          { timeoutMs: 10_000 },
        );
        assert.equal(
          streamAnswer.status,
          undefined,
          'no answer while the stream is open (the Supervisor tears it down)',
        );
        gzip.end();
        const status = await ended;
        assert.ok(status >= 200 && status < 300, `log stream closed with ${status}`);
      });
    }
  });
