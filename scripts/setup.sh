#!/usr/bin/env bash
# npm run setup: make this machine ready to run and test Flotilla. Idempotent; safe to run again at any time.
#  1. Debian packages the project needs (Docker engine, zstd, skopeo, debootstrap, busybox-static, chromium; the
#     host OS update tools: grub-common, libubootenv-tool, u-boot-tools, e2fsprogs; mtools, dosfstools, fdisk and
#     zip for the disk image tests), when missing
#  2. dockerd running
#  3. npm dependencies (from the lockfile), the TypeScript build, the agent bundle and the dashboard (Vite)
#  4. bin/flotilla, bin/flotilla-server, bin/flotilla-agent executable
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

# command-or-file → Debian package (chromium: the dashboard's browser tests drive Debian's build, not a download)
declare -A NEED=(
  [dockerd]=docker.io
  [zstd]=zstd
  [xdelta3]=xdelta3
  [skopeo]=skopeo
  [debootstrap]=debootstrap
  [/bin/busybox]=busybox-static
  [curl]=curl
  [/usr/bin/chromium]=chromium
  # host OS A/B updates (packages/agent/src/hostos): loop-device slots, ext4 images, the bootloader env tools
  [losetup]=mount
  [blockdev]=util-linux
  [mkfs.ext4]=e2fsprogs
  [debugfs]=e2fsprogs
  [grub-editenv]=grub-common
  [fw_setenv]=libubootenv-tool
  [mkenvimage]=u-boot-tools
  # `os configure` tests build disk images with sfdisk + mkfs.vfat and read them back with mtools and fsck.vfat
  [mdir]=mtools
  [/usr/sbin/mkfs.vfat]=dosfstools
  [/usr/sbin/sfdisk]=fdisk
  [zip]=zip
)
missing=()
for probe in "${!NEED[@]}"; do
  if [[ $probe == /* ]]; then [[ -e $probe ]] || missing+=("${NEED[$probe]}")
  else command -v "$probe" >/dev/null 2>&1 || missing+=("${NEED[$probe]}"); fi
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing Debian packages: ${missing[*]}; run as root or install them with apt-get" >&2
    exit 1
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  say "starting dockerd"
  if [[ $(id -u) -ne 0 ]]; then echo "setup: dockerd is not running and only root can start it" >&2; exit 1; fi
  mkdir -p /var/log
  # Its own session: a job control that ends the caller's process group (a CI step, a terminal) must not take the
  # engine with it. A stale pid file from an engine that was killed would stop it starting.
  rm -f /var/run/docker.pid
  setsid nohup dockerd >>/var/log/flotilla-dockerd.log 2>&1 </dev/null &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "setup: dockerd did not come up; see /var/log/flotilla-dockerd.log" >&2; exit 1; }
fi
say "docker engine $(docker version --format '{{.Server.Version}}') ready"

# Reinstall only when the lockfile changed since the last install (npm writes node_modules/.package-lock.json).
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  say "installing npm dependencies"
  npm ci --no-fund --no-audit --loglevel=error
fi
say "building"
npm run build --silent
chmod +x bin/flotilla bin/flotilla-server bin/flotilla-agent
say "ready: bin/flotilla, bin/flotilla-server, bin/flotilla-agent; next: npm start (or npm test)"
