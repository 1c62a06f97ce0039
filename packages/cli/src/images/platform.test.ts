import assert from 'node:assert/strict';
import { test } from 'node:test';
import { thrownCode } from '@flotilla/testkit';
import { FlotillaError } from '@flotilla/protocol';
import { runsOn } from '@flotilla/protocol';
import { explainBuildFailure, platformFlag, targetPlatform, traceBuildLine } from './platform.js';
import type { BuildTrace } from './platform.js';

const code = thrownCode;

test('target platform: the flag wins, else the device type, else UNKNOWN_DEVICE_TYPE', () => {
  assert.deepEqual(targetPlatform({ slug: 'pis', deviceType: 'raspberrypi4-64' }, undefined), {
    platform: { os: 'linux', architecture: 'arm64' },
    name: 'linux/arm64',
    reason: 'fleet pis (raspberrypi4-64)',
  });
  assert.equal(targetPlatform({ slug: 'old', deviceType: 'raspberrypi3' }, undefined).name, 'linux/arm/v7');
  assert.equal(
    targetPlatform({ slug: 'pis', deviceType: 'raspberrypi4-64' }, platformFlag('linux/amd64')).name,
    'linux/amd64',
  );
  assert.equal(targetPlatform({ slug: 't', deviceType: 'toaster' }, platformFlag('linux/arm')).name, 'linux/arm/v7');
  assert.equal(
    code(() => targetPlatform({ slug: 't', deviceType: 'toaster' }, undefined)),
    'UNKNOWN_DEVICE_TYPE',
  );
  assert.equal(platformFlag(undefined), undefined);
  for (const bad of ['nonsense', 'arm64', 'linux/arm64/v7', 'windows/amd64', ''])
    assert.equal(
      code(() => platformFlag(bad)),
      'VALIDATION_FAILED',
      bad,
    );
});

test('image platform check: architecture, os and the ARM variant', () => {
  const arm7 = targetPlatform({ slug: 'f', deviceType: 'raspberrypi3' }, undefined);
  assert.equal(runsOn({ os: 'linux', architecture: 'arm', variant: 'v6' }, arm7.platform), true);
  assert.equal(runsOn({ os: 'linux', architecture: 'arm', variant: 'v8' }, arm7.platform), false);
  assert.equal(runsOn({ os: 'linux', architecture: 'arm64', variant: 'v8' }, arm7.platform), false);
  const arm64 = targetPlatform({ slug: 'f', deviceType: 'generic-aarch64' }, undefined);
  assert.equal(runsOn({ os: 'linux', architecture: 'arm64', variant: 'v8' }, arm64.platform), true);
  assert.equal(runsOn({ os: 'windows', architecture: 'arm64' }, arm64.platform), false);
  assert.equal(runsOn({ os: 'linux', architecture: 'amd64' }, arm64.platform), false);
});

test('build output tracing: the last FROM and step, and exec format errors', () => {
  const trace: BuildTrace = { execFormatError: false };
  for (const line of [
    'Step 1/4 : FROM golang:1.22 AS build',
    'Step 2/4 : RUN go build',
    'Step 3/4 : FROM --platform=linux/arm64 alpine:3',
    'Step 4/4 : RUN apk add curl',
    '\u001b[91mexec /bin/sh: exec format error\n\u001b[0m',
  ])
    traceBuildLine(trace, line);
  assert.deepEqual(trace, { base: 'alpine:3', step: 'RUN apk add curl', execFormatError: true });
});

test('build failures caused by the platform become one clear line; others are left alone', () => {
  const target = targetPlatform({ slug: 'pis', deviceType: 'raspberrypi4-64' }, undefined);
  const wrongBase = explainBuildFailure(
    'web',
    'image with reference debian:12 was found but does not match the specified platform: wanted linux/arm64, actual: linux/amd64',
    { base: 'debian:12', step: 'FROM debian:12', execFormatError: false },
    target,
    'linux/amd64',
  );
  assert.ok(wrongBase instanceof FlotillaError);
  assert.equal(wrongBase.code, 'PLATFORM_MISMATCH');
  assert.equal(
    wrongBase.message,
    'service web: base image debian:12 is linux/amd64 on this machine, but fleet pis (raspberrypi4-64) needs linux/arm64; use a base image published for linux/arm64 (for a multi-platform one, run `docker pull --platform linux/arm64 debian:12` first)',
  );
  const exec = explainBuildFailure(
    'web',
    "The command '/bin/sh -c make' returned a non-zero code: 1",
    { base: 'x', step: 'RUN make', execFormatError: true },
    target,
    'linux/amd64',
  );
  assert.equal(exec?.code, 'BUILD_FAILED');
  assert.match(
    exec?.message ?? '',
    /^building web for linux\/arm64 failed: step "RUN make" could not run because this machine \(linux\/amd64\) cannot execute linux\/arm64 programs \(exec format error\); install QEMU .*qemu-user-static binfmt-support/,
  );
  assert.doesNotMatch(exec?.message ?? '', /\n/);
  assert.equal(
    explainBuildFailure(
      'web',
      "The command '/bin/sh -c exit 3' returned a non-zero code: 3",
      { step: 'RUN exit 3', execFormatError: false },
      target,
      undefined,
    ),
    undefined,
  );
});
