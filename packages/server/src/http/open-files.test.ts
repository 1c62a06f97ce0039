import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { connectionCapacity, describeOpenFiles, openFileLimits } from './open-files.js';

const hasPrlimit = (() => {
  try {
    execFileSync('prlimit', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

test('Node starts with its open-file soft limit raised to the hard limit, however low it was started', {
  skip: !hasPrlimit && 'no prlimit here',
}, () => {
  const limits = openFileLimits();
  assert.ok(limits, 'Linux /proc/self/limits');
  const hard = Number.isFinite(limits.hard) ? String(limits.hard) : 'unlimited';
  // Started at 256 (below a default shell's 1,024): what the server reads once running.
  const script = `import('${new URL('./open-files.js', import.meta.url).href}').then((m) => process.stdout.write(JSON.stringify(m.openFileLimits())))`;
  const out = execFileSync('prlimit', [`--nofile=256:${hard}`, process.execPath, '-e', script], { encoding: 'utf8' });
  const seen = JSON.parse(out) as { soft: number | null; hard: number | null };
  // JSON turns Infinity into null.
  assert.equal(seen.soft, seen.hard);
  assert.equal(seen.hard, Number.isFinite(limits.hard) ? limits.hard : null);
});

test('the start line says how many device connections the limit leaves room for', () => {
  assert.equal(connectionCapacity(20_000), 19_000);
  assert.equal(connectionCapacity(500), 0);
  assert.equal(
    describeOpenFiles({ soft: 20_000, hard: 20_000 }),
    'open-file limit 20000: room for about 19000 device connections',
  );
  assert.match(describeOpenFiles({ soft: 1024, hard: 4096 }), /below the hard limit 4096/);
});
