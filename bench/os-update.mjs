#!/usr/bin/env node
// Host OS A/B update on loopback (packages/agent/dist/hostos): two loop devices as slots a and b (sparse files in
// the temp folder), a raw ext4 root filesystem image of BENCH_IMAGE_MIB (default 128 MiB; half of it an
// incompressible file) served over loopback HTTP by a process of its own (bench/lib/os-image-server.mjs), the GRUB
// adapter on a real grubenv (grub-editenv).
// Each of BENCH_RUNS (default 3) runs measures, on slot b:
//   - the limit: `dd if=<image> of=<slot> bs=1M conv=fsync`, the raw write of the same bytes to the same device;
//   - the agent's slot writer alone from the image file (hash + 1 MiB writes + fdatasync every 32 MiB), for comparison,
//     and again with a checkpoint file (fdatasync + a checkpoint replaced atomically every 1/64 of the image), which
//     is how the agent writes (a restart resumes from the last checkpoint);
//   - the agent's update from the command to committed: write (streamed from HTTP, hashed, checkpointed as above),
//     read-back verify (device cache dropped), arm the trial, "reboot" (the grub.cfg decision applied to the env),
//     the trial boot's checks (one check that passes at once: the real ones wait on the engine and the control plane)
//     and commit; with the bytes the HTTP server sent.
// Run as root after `npx tsc -b`: `node bench/os-update.mjs`. Progress on stderr, the report (markdown) on stdout.
import { execFileSync, fork } from 'node:child_process';
import { createReadStream, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes, createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { revision } from './lib/revision.mjs';

const root = new URL('..', import.meta.url).pathname;
const { HostOsUpdater } = await import(join(root, 'packages/agent/dist/hostos/host-os-updater.js'));
const { openImage } = await import(join(root, 'packages/agent/dist/hostos/image-source.js'));
const { writeSlot } = await import(join(root, 'packages/agent/dist/hostos/slot-writer.js'));
const { GrubBootloader, GrubBootSimulator } = await import(join(root, 'packages/agent/dist/hostos/grub-bootloader.js'));

const MIB = 1024 * 1024;
const IMAGE_MIB = Number(process.env.BENCH_IMAGE_MIB ?? 128);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const log = (message) => process.stderr.write(`${message}\n`);
const sh = (file, args) => execFileSync(file, args, { encoding: 'utf8' });
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const work = mkdtempSync(join(tmpdir(), 'flotilla-bench-os-'));
const loops = [];
let server;
try {
  const slots = {};
  for (const slot of ['a', 'b']) {
    const file = join(work, `slot-${slot}.img`);
    writeFileSync(file, '');
    execFileSync('truncate', ['-s', `${IMAGE_MIB + 32}M`, file]);
    slots[slot] = sh('losetup', ['-f', '--show', file]).trim();
    loops.push(slots[slot]);
  }
  const rootfs = join(work, 'rootfs');
  mkdirSync(join(rootfs, 'etc'), { recursive: true });
  writeFileSync(join(rootfs, 'etc', 'os-release'), 'VERSION="bench"\n');
  writeFileSync(join(rootfs, 'payload.bin'), randomBytes((IMAGE_MIB / 2) * MIB));
  const image = join(work, 'os.img');
  sh('mkfs.ext4', ['-q', '-F', '-d', rootfs, image, `${IMAGE_MIB}M`]);
  const size = statSync(image).size;
  const sha256 = createHash('sha256');
  for await (const chunk of createReadStream(image)) sha256.update(chunk);
  const target = { version: 'bench', url: '', sha256: sha256.digest('hex'), size };

  let sent = 0;
  server = fork(join(root, 'bench/lib/os-image-server.mjs'), [image], { stdio: 'inherit' });
  const port = await new Promise((resolve, reject) => {
    server.on('message', (m) => (m.port ? resolve(m.port) : (sent += m.sent)));
    server.on('exit', () => reject(new Error('the image server exited')));
  });
  target.url = `http://127.0.0.1:${port}/os.img`;

  const grubenv = join(work, 'grubenv');
  const config = {
    slots,
    bootloader: { type: 'grub', grubenv },
    trialHealthTimeoutSeconds: 60,
    cmdlineKey: 'flotilla.slot',
  };
  const rows = [];
  for (let run = 1; run <= RUNS; run++) {
    log(`run ${run}/${RUNS}: dd`);
    let t0 = performance.now();
    sh('dd', [`if=${image}`, `of=${slots.b}`, 'bs=1M', 'conv=fsync', 'status=none']);
    const ddSeconds = (performance.now() - t0) / 1000;
    t0 = performance.now();
    await writeSlot({
      device: slots.b,
      open: async () => ({ stream: createReadStream(image), start: 0 }),
      sha256: target.sha256,
      size,
    });
    const fileSeconds = (performance.now() - t0) / 1000;
    const checkpoint = join(work, 'host-os-write.json');
    rmSync(checkpoint, { force: true });
    sh('dd', ['if=/dev/zero', `of=${slots.b}`, 'bs=1M', `count=${IMAGE_MIB}`, 'conv=fsync', 'status=none']);
    t0 = performance.now();
    await writeSlot({
      device: slots.b,
      open: async () => ({ stream: createReadStream(image), start: 0 }),
      sha256: target.sha256,
      size,
      checkpoint,
    });
    const checkpointSeconds = (performance.now() - t0) / 1000;
    rmSync(checkpoint, { force: true });
    sh('dd', ['if=/dev/zero', `of=${slots.b}`, 'bs=1M', `count=${IMAGE_MIB}`, 'conv=fsync', 'status=none']);

    log(`run ${run}/${RUNS}: update`);
    rmSync(grubenv, { force: true });
    sh('grub-editenv', [grubenv, 'create']);
    const bootloader = new GrubBootloader(grubenv);
    const stateFile = join(work, 'host-os-update.json');
    rmSync(stateFile, { force: true });
    const marks = {};
    const agent = (booted) =>
      HostOsUpdater.open({
        config,
        bootloader,
        booted,
        stateFile,
        checkpointFile: join(work, 'host-os-write.json'),
        openImage,
        healthChecks: [{ name: 'ready', check: async () => true }],
        reboot: async () => undefined,
        log: pino({ level: 'silent' }),
        onChange: (state) => (marks[state.phase] ??= performance.now()),
      });
    sent = 0;
    t0 = performance.now();
    const first = await agent('a');
    const armed = await first.start(target);
    if (armed.phase !== 'armed') throw new Error(`update ended ${armed.phase}: ${armed.reason?.message}`);
    const booted = await new GrubBootSimulator(bootloader).boot();
    const done = await (await agent(booted)).resume();
    const total = (performance.now() - t0) / 1000;
    if (done.phase !== 'committed') throw new Error(`trial ended ${done.phase}: ${done.reason?.message}`);
    rows.push({
      ddSeconds,
      fileSeconds,
      checkpointSeconds,
      writeSeconds: (marks.verifying - t0) / 1000,
      verifySeconds: (marks.armed - marks.verifying) / 1000,
      total,
      sent,
    });
  }
  const mibps = (s) => size / MIB / s;
  const medianRow = Object.fromEntries(Object.keys(rows[0]).map((k) => [k, median(rows.map((r) => r[k]))]));
  process.stdout.write(
    [
      `# Host OS update on loop devices (${revision()})`,
      '',
      `Image ${(size / MIB).toFixed(0)} MiB (${size} bytes), ext4 with ${IMAGE_MIB / 2} MiB of random data, over HTTP on loopback to a loop device backed by ${tmpdir()}; GRUB adapter (grub-editenv). The median row is each column's median over ${RUNS} runs.`,
      '',
      '| run | dd to the slot (MiB/s) | agent write, HTTP (MiB/s) | / dd | agent write, file (MiB/s) | / dd | same, checkpointed (MiB/s) | / unchecked | read-back verify (s) | command → committed (s) | bytes sent / image |',
      '|---|---|---|---|---|---|---|---|---|---|---|',
      ...[...rows, medianRow].map(
        (r, i) =>
          `| ${i < rows.length ? i + 1 : 'median'} | ${mibps(r.ddSeconds).toFixed(0)} | ${mibps(r.writeSeconds).toFixed(0)} | ${(r.ddSeconds / r.writeSeconds).toFixed(2)} | ${mibps(r.fileSeconds).toFixed(0)} | ${(r.ddSeconds / r.fileSeconds).toFixed(2)} | ${mibps(r.checkpointSeconds).toFixed(0)} | ${(r.fileSeconds / r.checkpointSeconds).toFixed(2)} | ${r.verifySeconds.toFixed(2)} | ${r.total.toFixed(2)} | ${(r.sent / size).toFixed(3)} |`,
      ),
      '',
    ].join('\n'),
  );
} finally {
  server?.disconnect();
  for (const loop of loops) {
    try {
      sh('losetup', ['-d', loop]);
    } catch (error) {
      log(`cannot detach ${loop}: ${error.message}`);
    }
  }
  rmSync(work, { recursive: true, force: true });
}
