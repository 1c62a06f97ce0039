#!/usr/bin/env node
// Runs the compiled tests of every package with Node's built-in runner.
//   node scripts/test.mjs            all tests (unit + integration against the real Docker engine and databases)
//   node scripts/test.mjs --unit     unit tests only (*.test.js that are not *.integration.test.js)
//   node scripts/test.mjs <filter>   only test files whose path contains <filter>
import { spawn } from 'node:child_process';
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const unitOnly = args.includes('--unit');
const filters = args.filter((a) => !a.startsWith('--'));

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) walk(full, out);
    else if (name.endsWith('.test.js')) out.push(full);
  }
  return out;
}

const files = [];
for (const pkg of readdirSync(join(root, 'packages')).sort()) {
  const dist = join(root, 'packages', pkg, 'dist');
  if (existsSync(dist)) walk(dist, files);
}
const selected = files
  .filter((f) => !unitOnly || !f.endsWith('.integration.test.js'))
  .filter((f) => filters.length === 0 || filters.some((x) => relative(root, f).includes(x)));
if (selected.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}

const concurrency = process.env.FLOTILLA_TEST_CONCURRENCY ?? '2';
const child = spawn(
  process.execPath,
  ['--test', `--test-concurrency=${concurrency}`, '--test-timeout=900000', ...selected],
  { stdio: 'inherit', cwd: root },
);
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
