// A throwaway control plane for a bench: flotilla-server on loopback, its user API, and the real CLI.
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertAlive, launch, waitUntil } from './children.mjs';

const root = new URL('../..', import.meta.url).pathname;

/**
 * Starts `bin/flotilla-server` on a fresh data folder and resolves once it is healthy and has printed its admin
 * credentials (first start only: hence the fresh folder). `extraArgs` go on its command line.
 */
export async function startServer(dataDir, port, extraArgs = []) {
  const url = `http://127.0.0.1:${port}`;
  let admin;
  const child = launch(
    'flotilla-server',
    ['--data', dataDir, '--port', String(port), '--public-url', url, '--log-level', 'warn', ...extraArgs],
    (line) => {
      if (line.startsWith('FLOTILLA_ADMIN ')) {
        // WARNING: the line carries secrets; keep it off the terminal.
        admin = JSON.parse(line.slice('FLOTILLA_ADMIN '.length));
        return 'consumed';
      }
      return line.startsWith('flotilla-server listening') ? 'consumed' : undefined;
    },
  );
  const alive = () => assertAlive(child, 'flotilla-server');
  await waitUntil(`${url}/healthz`, async () => (await fetch(`${url}/healthz`)).ok, { alive });
  await waitUntil('the FLOTILLA_ADMIN line', () => admin, { timeoutMs: 5_000, alive });
  return { child, url, apiKey: admin.apiKey, alive };
}

/** One user-API call; throws with the status and body unless it answers 2xx. */
export async function api(server, method, path, body) {
  const response = await fetch(`${server.url}/api/v1${path}`, {
    method,
    headers: {
      authorization: `Bearer ${server.apiKey}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${text}`);
  return text ? JSON.parse(text) : undefined;
}

/** Runs `bin/flotilla` with its own config folder, so the user's credentials are neither read nor written. */
export function cli(configDir, args) {
  return new Promise((resolve, reject) => {
    execFile(
      join(root, 'bin/flotilla'),
      args,
      { env: { ...process.env, FLOTILLA_CONFIG_DIR: configDir }, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`flotilla ${args.join(' ')} failed: ${stderr.trim() || error.message}`));
        else resolve(stdout);
      },
    );
  });
}

/**
 * Writes a compose project: one folder per service with a Dockerfile `FROM base`, a command that idles and exits
 * at once on TERM, and `volumes` as given ({service: ['name:/path']}). `files(name)`, if given, returns the files
 * of a service's folder ({'Dockerfile': text, ...}) instead of that idle Dockerfile.
 */
export function writeComposeProject(dir, base, services, volumes, { files } = {}) {
  const compose = ['services:'];
  for (const [name, mounts] of Object.entries(services)) {
    mkdirSync(join(dir, name), { recursive: true });
    const contents = files?.(name) ?? {
      Dockerfile: `FROM ${base}\nENV ROLE=${name}\nCMD ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 5 & wait $!; done"]\n`,
    };
    for (const [file, text] of Object.entries(contents)) writeFileSync(join(dir, name, file), text);
    compose.push(`  ${name}:`, `    build: ${name}`);
    if (mounts.length) compose.push(`    volumes: [${mounts.map((m) => JSON.stringify(m)).join(', ')}]`);
  }
  compose.push('volumes:', ...volumes.map((v) => `  ${v}: {}`), '');
  writeFileSync(join(dir, 'docker-compose.yml'), compose.join('\n'));
}
