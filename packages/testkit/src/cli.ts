#!/usr/bin/env node
/** `flotilla-testkit base-images [--debian]`: prepares the test base images ahead of a test run. */
import { ensureBusyboxImage, ensureDebianImage } from './base-images.js';

const [command, ...flags] = process.argv.slice(2);
if (command !== 'base-images') {
  process.stderr.write('usage: flotilla-testkit base-images [--debian]\n');
  process.exit(2);
}
try {
  process.stdout.write(`${await ensureBusyboxImage()}\n`);
  if (flags.includes('--debian')) process.stdout.write(`${await ensureDebianImage()}\n`);
} catch (error) {
  process.stderr.write(`base images: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}
