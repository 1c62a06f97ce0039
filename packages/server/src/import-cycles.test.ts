import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

/** This package's sources (the test runs from dist/, beside src/). */
const src = resolve(dirname(fileURLToPath(import.meta.url)), '../src');

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) sources(full, out);
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts')) out.push(full);
  }
  return out;
}

/** Relative imports of a file, type-only ones included: a circle of types is still a circle between modules. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from|import\()\s*['"](\.[^'"]+)\.js['"]/g)].map((m) =>
    resolve(dirname(file), `${m[1]}.ts`),
  );
}

test('the server has no import circles between its modules, type imports included', () => {
  const graph = new Map(sources(src).map((file) => [file, importsOf(file)]));
  assert.ok(graph.size > 50, `read only ${graph.size} files from ${src}`);
  const circles: string[] = [];
  const done = new Set<string>();
  const visit = (file: string, path: string[]) => {
    const at = path.indexOf(file);
    if (at !== -1) {
      circles.push([...path.slice(at), file].map((f) => relative(src, f)).join(' -> '));
      return;
    }
    if (done.has(file)) return;
    for (const next of graph.get(file) ?? []) visit(next, [...path, file]);
    done.add(file);
  };
  for (const file of graph.keys()) visit(file, []);
  assert.deepEqual(circles, []);
});
