#!/usr/bin/env node
// Bundles the built agent (dist/main.js, the type-checked tsc output) into dist/bundle/, which is what
// bin/flotilla-agent runs on a device.
//
// Why: every module a process loads stays in memory as source text, bytecode and module records. One minified
// file per lazily loaded part (the local API server, the remote-action socket) instead of ~300 files from
// node_modules keeps about 4 MB of resident memory off every device (bench/agent.mjs). Identifiers are kept so
// stack traces in the agent's logs still name functions; an external source map is written beside each chunk for
// reading a trace offline (not loaded at run time: --enable-source-maps would keep it in memory).
//
// Left outside the bundle, loaded from node_modules at run time:
// - better-sqlite3: a native addon;
// - @lydell/node-pty: a native addon (prebuilt, in a per-platform package it finds at run time), imported only when
//   a remote host terminal opens;
// - dockerode: required through createRequire by engine/docker-engine.ts, which first stubs the modules dockerode
//   loads for features the agent never uses (ssh, BuildKit gRPC);
// - ws's optional native helpers (bufferutil, utf-8-validate): ws runs without them.
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = `${root}dist/bundle`;

await rm(outdir, { recursive: true, force: true });
const result = await build({
  entryPoints: { main: `${root}dist/main.js` },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  outExtension: { '.js': '.mjs' },
  minifyWhitespace: true,
  minifySyntax: true,
  minifyIdentifiers: process.env.MINID === '1',
  sourcemap: 'external',
  external: ['better-sqlite3', '@lydell/node-pty', 'dockerode', 'bufferutil', 'utf-8-validate'],
  // CommonJS packages inside an ESM bundle call require() for node built-ins; give them a real one.
  banner: {
    js: "import { createRequire as __flotillaCreateRequire } from 'node:module'; const require = __flotillaCreateRequire(import.meta.url);",
  },
  legalComments: 'none',
  logLevel: 'warning',
  metafile: true,
});
const kb =
  Object.entries(result.metafile.outputs)
    .filter(([file]) => file.endsWith('.mjs'))
    .reduce((sum, [, output]) => sum + output.bytes, 0) / 1024;
console.log(`agent bundle: ${outdir.slice(root.length)} (${kb.toFixed(0)} kB of JavaScript)`);
