#!/usr/bin/env node
// Chooses the delta algorithm: zstd -19 --long --patch-from vs xdelta3 (-9, lzma secondary), per layer vs over the
// whole uncompressed image, on an image pair built FROM the debootstrapped Debian base: a Python app whose
// Dockerfile copies its source before installing its dependencies (apt python3), with one source line changed, so
// the dependency layer is rebuilt nearly identical (the scenario 1). Every decoded output is checked
// byte-identical before a figure is printed.
// Run: `node bench/delta-measure.mjs` from the repository root, after `npx tsc -b`, with Docker running and the
// Debian mirror reachable from containers. Needs zstd and xdelta3 on PATH. Report (markdown) on stdout.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatReport, measurePair, savedImage } from './lib/delta-measure.mjs';
import { revision } from './lib/revision.mjs';

const root = new URL('..', import.meta.url).pathname;
const { ensureDebianImage } = await import(join(root, 'packages/testkit/dist/index.js'));

const work = mkdtempSync(join(tmpdir(), 'flotilla-delta-measure-'));
try {
  const base = await ensureDebianImage();
  const build = (tag, line) => {
    const context = join(work, `ctx-${tag.replace(/\W/g, '_')}`);
    mkdirSync(join(context, 'app'), { recursive: true });
    writeFileSync(join(context, 'app/main.py'), `import sys\nprint(${JSON.stringify(line)})\nsys.exit(0)\n`);
    writeFileSync(
      join(context, 'Dockerfile'),
      [
        `FROM ${base}`,
        'COPY app /app',
        'RUN apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*',
        'CMD ["python3", "/app/main.py"]',
      ].join('\n'),
    );
    process.stderr.write(`building ${tag}\n`);
    execFileSync('docker', ['build', '-q', '-t', tag, context], { stdio: ['ignore', 'ignore', 'inherit'] });
    return tag;
  };
  const from = build('flotilla-bench/delta-measure:a', 'hello from release A');
  const to = build('flotilla-bench/delta-measure:b', 'hello from release B');
  mkdirSync(join(work, 'a'));
  mkdirSync(join(work, 'b'));
  const result = await measurePair(savedImage(from, join(work, 'a')), savedImage(to, join(work, 'b')), work);
  console.log(`# delta algorithms (revision ${revision()}, zstd and xdelta3 as installed)\n`);
  console.log(formatReport('python3 app, one source line changed (dependency layer rebuilt)', result));
} finally {
  rmSync(work, { recursive: true, force: true });
}
