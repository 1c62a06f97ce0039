import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FlotillaError } from '@flotilla/protocol';
import { grubBootEnv } from './grub-bootloader.js';
import { parseHostOsConfig } from './host-os-config.js';
import { slotFromCmdline } from './select-bootloader.js';
import { ubootBootEnv } from './uboot-bootloader.js';

const slots = { a: '/dev/mmcblk0p2', b: '/dev/mmcblk0p3' };

describe('config.json hostOS', () => {
  it('absent: no A/B host', () => assert.equal(parseHostOsConfig(undefined), undefined));

  it('valid, with defaults', () => {
    const config = parseHostOsConfig({ slots, bootloader: { type: 'grub', grubenv: '/boot/grub/grubenv' } });
    assert.deepEqual(config, {
      slots,
      bootloader: { type: 'grub', grubenv: '/boot/grub/grubenv' },
      trialHealthTimeoutSeconds: 300,
      cmdlineKey: 'flotilla.slot',
    });
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ['no slots', { bootloader: { type: 'file', path: '/x' } }, /hostOS\.slots/],
    [
      'relative device',
      { slots: { a: 'sda2', b: '/dev/sda3' }, bootloader: { type: 'file', path: '/x' } },
      /hostOS\.slots\.a: an absolute path/,
    ],
    [
      'same device twice',
      { slots: { a: '/dev/sda2', b: '/dev/sda2' }, bootloader: { type: 'file', path: '/x' } },
      /must be different/,
    ],
    ['unknown bootloader', { slots, bootloader: { type: 'lilo' } }, /hostOS\.bootloader\.type/],
    ['grub without grubenv', { slots, bootloader: { type: 'grub' } }, /hostOS\.bootloader\.grubenv/],
    [
      'a typo',
      { slots, bootloader: { type: 'uboot', fwEnvConfig: '/etc/fw_env.config' }, trialHealthTimout: 5 },
      /trialHealthTimout/,
    ],
  ];
  for (const [name, raw, message] of bad)
    it(`refuses ${name} with HOST_OS_CONFIG_INVALID`, () =>
      assert.throws(
        () => parseHostOsConfig(raw),
        (e: unknown) => e instanceof FlotillaError && e.code === 'HOST_OS_CONFIG_INVALID' && message.test(e.message),
      ));
});

describe('boot environments and the booted slot', () => {
  it('reads the slot the kernel was told', () => {
    assert.equal(slotFromCmdline('root=/dev/sda3 flotilla.slot=b quiet\n', 'flotilla.slot'), 'b');
    assert.equal(slotFromCmdline('root=/dev/sda3 xflotilla.slot=b', 'flotilla.slot'), undefined);
  });

  it('GRUB: committed slot (a by default) and a one-shot trial', () => {
    assert.deepEqual(grubBootEnv(new Map()), { committed: 'a', trial: null });
    assert.deepEqual(
      grubBootEnv(
        new Map([
          ['flotilla_slot', 'b'],
          ['flotilla_trial', ''],
        ]),
      ),
      { committed: 'b', trial: null },
    );
    assert.deepEqual(grubBootEnv(new Map([['flotilla_trial', 'b']])), { committed: 'a', trial: 'b' });
    assert.throws(() => grubBootEnv(new Map([['flotilla_slot', 'c']])), /BOOTLOADER|slot/);
  });

  it('U-Boot: while upgrade_available, bootcmd starts the trial and the other slot is the committed one', () => {
    assert.deepEqual(ubootBootEnv(new Map([['flotilla_slot', 'a']])), { committed: 'a', trial: null });
    assert.deepEqual(
      ubootBootEnv(
        new Map([
          ['flotilla_slot', 'b'],
          ['upgrade_available', '1'],
        ]),
      ),
      { committed: 'a', trial: 'b' },
    );
  });
});

describe('openHostOs (the entry point)', () => {
  it('no hostOS: undefined; a slot on the command line: an idle updater; none: BOOTLOADER_FAILED', async (t) => {
    const { mkdtemp, rm, writeFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { default: pino } = await import('pino');
    const { openHostOs } = await import('./host-os.js');
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-hostos-open-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const cmdlineFile = join(dir, 'cmdline');
    const deps = {
      hostOS: { slots, bootloader: { type: 'file', path: join(dir, 'boot.json') } },
      dataDir: dir,
      reboot: async () => undefined,
      healthChecks: [],
      log: pino({ level: 'silent' }),
      cmdlineFile,
    };
    assert.equal(await openHostOs({ ...deps, hostOS: undefined }), undefined);
    await writeFile(cmdlineFile, 'console=ttyS0 flotilla.slot=b\n');
    const updater = await openHostOs(deps);
    assert.equal(updater?.state().phase, 'idle');
    await writeFile(join(dir, 'host-os-update.json'), '{"phase":"trial","target":');
    assert.equal((await openHostOs(deps))?.state().phase, 'idle', 'an unreadable state file counts as idle');
    await writeFile(cmdlineFile, 'console=ttyS0\n');
    await assert.rejects(openHostOs(deps), { code: 'BOOTLOADER_FAILED' });
    await assert.rejects(openHostOs({ ...deps, hostOS: { slots } }), { code: 'HOST_OS_CONFIG_INVALID' });

    // The agent's start: what openHostOs refuses is logged and the agent runs on without OS updates.
    const { startHostOs } = await import('./host-os.js');
    const logged: string[] = [];
    const log = pino({ level: 'error' }, { write: (line: string) => logged.push(JSON.parse(line).msg) });
    const system = () => undefined;
    const reports: unknown[] = [];
    const report = (update: unknown) => reports.push(update);
    assert.equal(await startHostOs({ ...deps, log, system, report, hostOS: { slots } }), undefined);
    assert.equal(await startHostOs({ ...deps, log, system, report }), undefined, 'no slot on the command line');
    assert.deepEqual(logged, ['host OS updates are off', 'host OS updates are off']);
    await writeFile(cmdlineFile, 'flotilla.slot=a\n');
    assert.equal((await startHostOs({ ...deps, log, system, report }))?.state().phase, 'idle');
    assert.deepEqual(
      reports,
      [{ phase: 'idle', version: null, progress: null, error_code: null, error: null }],
      'the device report hears where the update stands at start, and only a host with A/B updates says anything',
    );
  });
});
