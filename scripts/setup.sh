#!/usr/bin/env bash
# Installs what elastic-api needs on Debian 12 and starts libvirt; safe to run again.
# Used by scripts/serve.sh and scripts/test.sh, so each of the README's commands stands alone.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils qemu-block-extra
              dnsmasq-base libvirt-dev pkg-config gcc python3-venv python3-dev
              curl python3-libcloud
              sqlite3  # the README's backup command
              wrk  # scripts/bench_api.py
              # loop-mounted XFS and Btrfs (reflinks) in tests/storage/test_reflink.py and
              # scripts/bench_imaging.py --pool-fs
              xfsprogs btrfs-progs
              postgresql  # the PostgreSQL store and its contract tests (a cluster of the tests' own)
              # sshd for the test that reaches the local libvirtd over qemu+ssh: the test starts a
              # daemon of its own on loopback (its own config, keys and port), never the system's.
              openssh-server
              xorriso  # the cloud-init NoCloud seed (cidata ISO) of every ECS server
              cloud-init  # `cloud-init schema`: the tests' judge of the user-data we render
              # the real-guest test builds a Debian guest (scripts/build_test_guest.sh) and its seed
              debootstrap dosfstools mtools syslinux syslinux-common genisoimage)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

# No systemd on these machines: start the daemons by hand when they are not running.
if [ "$(id -u)" -eq 0 ]; then
  # QEMU guests run as root so they can open /dev/kvm and the drive pool without relabelling.
  if ! grep -q '^user = "root"' /etc/libvirt/qemu.conf; then
    printf '\nuser = "root"\ngroup = "root"\n' >> /etc/libvirt/qemu.conf
    pkill -x libvirtd 2>/dev/null || true
    sleep 1
  fi
  pgrep -x virtlogd >/dev/null || virtlogd -d
  pgrep -x libvirtd >/dev/null || libvirtd -d
  for _ in $(seq 1 50); do
    virsh -c qemu:///system version >/dev/null 2>&1 && break
    sleep 0.2
  done
fi

VENV=${ELASTIC_API_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
stamp="$VENV/.installed-$(cat setup.cfg setup.py | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  "$VENV/bin/pip" install -q --upgrade pip >&2
  "$VENV/bin/pip" install -q -e '.[test]' >&2
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi
