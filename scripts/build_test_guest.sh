#!/usr/bin/env bash
# Builds the real-guest test's disk image: a small Debian 12 with Debian's own cloud-init, its
# kernel and initramfs inside, booted by SYSLINUX from a raw disk (MBR: a FAT boot partition holding
# the kernel, an ext4 root labelled `elroot`), its console on the first serial port.
#
#   scripts/build_test_guest.sh OUT.raw
#
# Made from Debian's packages by debootstrap; no loop device or mount of the image is needed (the
# root filesystem is written by `mkfs.ext4 -d`, the boot partition with mtools). Needs root (the
# chroot) and the Debian mirror (ELASTIC_TEST_DEBIAN_MIRROR, default deb.debian.org). OUT appears
# only once whole. tests/guest/image.py calls this and caches OUT, keyed by this file's bytes.
set -euo pipefail

out=$1
mirror=${ELASTIC_TEST_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
# The image is 1 GiB, so that the smallest plan's drive (1 GB) holds it.
disk_mib=1024
boot_mib=48
# python3-cffi-backend: debootstrap's resolver cannot follow the virtual package python3-cryptography
# depends on; named here, apt-less resolution finds it.
packages=systemd-sysv,udev,kmod,linux-image-amd64,initramfs-tools,cloud-init,python3-cffi-backend,openssh-server,e2fsprogs

work=$(mktemp -d "$(dirname "$out")/.build-guest.XXXXXX")
root=$work/root
cleanup() {
  # debootstrap unmounts what it mounted; a build killed half-way may leave these.
  for m in "$root/proc" "$root/sys" "$root/dev/pts" "$root/dev"; do
    mountpoint -q "$m" 2>/dev/null && umount -l "$m" || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

echo "build_test_guest: debootstrap $suite from $mirror" >&2
debootstrap --variant=minbase --include="$packages" --components=main "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -40 "$work/debootstrap.log" >&2
  [ -f "$root/debootstrap/debootstrap.log" ] && tail -40 "$root/debootstrap/debootstrap.log" >&2
  exit 1
}

# -- configuration ---------------------------------------------------------------------------------
cat >"$root/etc/fstab" <<'EOF'
LABEL=elroot / ext4 defaults,errors=remount-ro 0 1
EOF
: >"$root/etc/machine-id"  # systemd makes one at first boot
echo "elastic-test-guest" >"$root/etc/hostname"
# Only the NoCloud seed (the `cidata` cdrom) is looked for; no network configuration is written:
# the tests never reach a guest over the network.
cat >"$root/etc/cloud/cloud.cfg.d/90-elastic-api-test.cfg" <<'EOF'
datasource_list: [NoCloud, None]
network: {config: disabled}
EOF
# Groups Debian's default cloud user is put in that minbase lacks (useradd fails on a missing one).
chroot "$root" groupadd -f netdev
chroot "$root" groupadd -f lxd

# -- slimming: what a guest on virtio/IDE never loads ----------------------------------------------
kver=$(basename "$(ls -d "$root"/lib/modules/*)")
mods=$root/lib/modules/$kver/kernel
rm -rf "$mods"/drivers/{gpu,media,infiniband,staging,net/wireless,net/ethernet,bluetooth,iio,isdn,hwmon,platform,mtd} \
  "$mods"/sound "$mods"/net/{wireless,mac80211,bluetooth} "$mods"/fs/{btrfs,xfs,ocfs2,gfs2,nfs,nfsd,ceph,smb,f2fs}
chroot "$root" depmod "$kver"
rm -rf "$root"/usr/share/{doc,man,info,locale}/* "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* \
  "$root"/var/cache/debconf/*-old "$root"/var/log/*.log "$root"/debootstrap

# -- the disk ----------------------------------------------------------------------------------------
cp "$root/boot/vmlinuz-$kver" "$work/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$work/initrd.img"
cat >"$work/syslinux.cfg" <<'EOF'
SERIAL 0 115200
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL vmlinuz
  APPEND initrd=initrd.img root=LABEL=elroot ro console=ttyS0,115200n8 net.ifnames=0
EOF
mkfs.vfat -n ELBOOT -C "$work/boot.img" $((boot_mib * 1024)) >/dev/null
mcopy -i "$work/boot.img" "$work/vmlinuz" "$work/initrd.img" "$work/syslinux.cfg" ::/
syslinux --install "$work/boot.img"

root_mib=$((disk_mib - 1 - boot_mib))
mkfs.ext4 -q -L elroot -d "$root" "$work/root.img" "${root_mib}M"

disk=$work/disk.raw
truncate -s "${disk_mib}M" "$disk"
sfdisk -q "$disk" <<EOF
label: dos
start=1MiB, size=${boot_mib}MiB, type=c, bootable
start=$((1 + boot_mib))MiB, type=83
EOF
dd if="$work/boot.img" of="$disk" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$work/root.img" of="$disk" bs=1M seek=$((1 + boot_mib)) conv=notrunc,sparse status=none
dd if=/usr/lib/SYSLINUX/mbr.bin of="$disk" bs=440 count=1 conv=notrunc status=none
sync "$disk"
mv "$disk" "$out"
echo "build_test_guest: $out ($(du -h "$out" | cut -f1) used of ${disk_mib} MiB)" >&2
