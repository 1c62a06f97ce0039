#!/usr/bin/env node
// npm start: a working Flotilla on this machine with its embedded defaults.
//   - flotilla-server on http://127.0.0.1:8080 with SQLite and blobs under .flotilla/server
//   - a fleet "local" and one device agent (.flotilla/device) running against the local Docker engine
// Prints the dashboard's URL, the admin's username, password and API key (kept in .flotilla/admin.json, mode 0600)
// and the device.
// Ctrl-C stops both. Run it again to resume: data, credentials and the device's identity persist.
//   FLOTILLA_PORT (8080), FLOTILLA_HOME (.flotilla), FLOTILLA_SERVER_LOG_LEVEL (warn) override the defaults.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';

const root = new URL('..', import.meta.url).pathname;
const home = process.env.FLOTILLA_HOME ?? join(root, '.flotilla');
const port = Number(process.env.FLOTILLA_PORT ?? 8080);
const url = `http://127.0.0.1:${port}`;
const adminFile = join(home, 'admin.json');
const deviceDir = join(home, 'device');
const configPath = join(deviceDir, 'config.json');
const children = new Set();

function fail(message) {
  process.stderr.write(`start: ${message}\n`);
  for (const child of children) child.kill('SIGTERM');
  process.exit(1);
}

/** Starts a bin/ program, prefixing its output; resolves the `FLOTILLA_ADMIN` line if the server prints one. */
function launch(name, args, onLine = () => undefined) {
  const child = spawn(join(root, 'bin', name), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => {
      // WARNING: the admin line carries secrets; it goes to admin.json, never to the terminal as is.
      if (onLine(line) === 'consumed') return;
      process.stdout.write(`[${name}] ${line}\n`);
    });
  }
  child.on('exit', (code, signal) => {
    children.delete(child);
    if (!shuttingDown) fail(`${name} exited (${code ?? signal}); see its output above`);
  });
  return child;
}

async function api(method, path, apiKey, body) {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${apiKey}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const json = text ? JSON.parse(text) : undefined;
  return { status: response.status, json };
}

async function waitHealthy() {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) return;
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
  fail(`server did not become healthy at ${url}/healthz within 60 s`);
}

let shuttingDown = false;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    shuttingDown = true;
    for (const child of children) child.kill('SIGTERM');
    setTimeout(() => process.exit(0), 10_000).unref();
  });
}

for (const built of ['packages/server/dist/main.js', 'packages/agent/dist/bundle/main.mjs']) {
  if (!existsSync(join(root, built))) fail('not built yet: run `npm run setup` first');
}
// Secrets live here (admin.json, the device's keys): private folders, also when an earlier run left them looser.
await mkdir(deviceDir, { recursive: true, mode: 0o700 });
await Promise.all([chmod(home, 0o700), chmod(deviceDir, 0o700)]);

let admin = existsSync(adminFile) ? JSON.parse(await readFile(adminFile, 'utf8')) : undefined;
const adminSaved = new Promise((resolve) => {
  launch(
    'flotilla-server',
    [
      '--data',
      join(home, 'server'),
      '--port',
      String(port),
      '--public-url',
      url,
      '--log-level',
      process.env.FLOTILLA_SERVER_LOG_LEVEL ?? 'warn',
    ],
    (line) => {
      if (!line.startsWith('FLOTILLA_ADMIN ')) return undefined;
      admin = JSON.parse(line.slice('FLOTILLA_ADMIN '.length));
      writeFile(adminFile, `${JSON.stringify(admin, null, 2)}\n`, { mode: 0o600 })
        .then(() => chmod(adminFile, 0o600))
        .then(resolve, (error) => fail(`cannot save ${adminFile}: ${error.message}`));
      return 'consumed';
    },
  );
});
await waitHealthy();
if (!admin) await Promise.race([adminSaved, sleep(2_000)]);
if (!admin) fail(`the server has data but ${adminFile} is missing; remove ${home} to start afresh`);

const fleet = await api('GET', '/api/v1/fleets/local', admin.apiKey);
if (fleet.status === 404) {
  const created = await api('POST', '/api/v1/fleets', admin.apiKey, {
    name: 'local',
    slug: 'local',
    deviceType: 'generic-amd64',
  });
  if (created.status !== 201 && created.status !== 200)
    fail(`cannot create fleet "local": ${JSON.stringify(created.json)}`);
} else if (fleet.status !== 200) {
  fail(`cannot read fleet "local": ${JSON.stringify(fleet.json)}`);
}
if (!existsSync(configPath)) {
  const config = await api('POST', '/api/v1/fleets/local/config-json', admin.apiKey, { developmentMode: true });
  if (config.status !== 200 && config.status !== 201) fail(`cannot make config.json: ${JSON.stringify(config.json)}`);
  await writeFile(configPath, `${JSON.stringify(config.json, null, 2)}\n`, { mode: 0o600 });
}
// The device API listens on loopback only: this is a developer's machine, not a device on its own LAN.
launch('flotilla-agent', ['--config', configPath, '--data', deviceDir, '--api-address', '127.0.0.1']);

const deadline = Date.now() + 60_000;
let device;
while (!device && Date.now() < deadline) {
  const list = await api('GET', '/api/v1/devices?fleet=local', admin.apiKey);
  device = list.json?.items?.find((d) => d.lastSeenAt !== null) ?? undefined;
  if (!device) await sleep(500);
}
if (!device) fail('the local device did not register and report within 60 s');

process.stdout.write(`
Flotilla is running.
  dashboard  ${url}   (data in ${home})
  sign in    username ${admin.username}, password ${admin.password}   (both kept in ${adminFile})
  API key    ${admin.apiKey}
  CLI        bin/flotilla login --url ${url} --api-key ${admin.apiKey}
  fleet      local
  device     ${device.name} (${device.uuid.slice(0, 7)}), ${device.isOnline ? 'online' : 'offline'}, agent ${device.agentVersion ?? '?'}
Deploy a compose project with: bin/flotilla deploy local <folder>      Stop with Ctrl-C.
`);
