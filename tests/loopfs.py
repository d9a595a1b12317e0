"""A fresh file system of a chosen type on a loop device, for the tests (and scripts/bench_imaging.py)
that need one the machine's own disks are not: XFS or Btrfs, which share extents (reflinks), or
ext4, which does not, whatever the machine's temporary directory is on.

The file system lives in a sparse file (it costs the blocks written to it) and is mounted through
a loop device of its own (`losetup --find --show`, then `mount`): root only. `unavailable` says why
a machine cannot (for a skip); `loop_mounted` unmounts, detaches and removes it on the way out,
whatever happened inside, so no mount or loop device outlives its test."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

# mkfs for each file system a test may ask for; XFS with reflinks asked for by name (the default
# since xfsprogs 5.1, but never assumed).
MKFS = {
    "xfs": ("mkfs.xfs", "-q", "-m", "reflink=1"),
    "btrfs": ("mkfs.btrfs", "-q"),
    "ext4": ("mkfs.ext4", "-q", "-F", "-b", "4096"),
}
# The smallest file system each mkfs accepts (xfsprogs 6.1 refuses under 300 MiB).
MINIMUM = {"xfs": 300 << 20, "btrfs": 128 << 20, "ext4": 16 << 20}
# Seconds an unmount is retried while something still holds a file open (a server just stopped).
UNMOUNT_PATIENCE = 30.0
# Where each file system's mkfs comes from, for the skip's reason.
PACKAGE = {"xfs": "xfsprogs", "btrfs": "btrfs-progs", "ext4": "e2fsprogs"}


def unavailable(fs: str) -> str | None:
    """Why a `fs` loop mount cannot be made here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root to attach a loop device and mount it"
    if not os.path.exists("/dev/loop-control"):
        return "no loop devices here (/dev/loop-control is missing)"
    for tool in ("losetup", "mount", "umount", MKFS[fs][0]):
        if shutil.which(tool) is None:
            return f"{tool} is missing (scripts/setup.sh installs {PACKAGE[fs]})"
    return None


def _run(*command: str | Path) -> str:
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{' '.join(map(str, command))} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def is_mounted(path: Path) -> bool:
    with open("/proc/self/mountinfo") as mounts:
        return any(line.split()[4] == str(path) for line in mounts)


def _unmount(mountpoint: Path) -> None:
    """Unmount, retrying while the file system is busy; lazily as a last resort, so that nothing
    stays mounted (the loop device then goes when its last user does)."""
    deadline = time.monotonic() + UNMOUNT_PATIENCE
    while True:
        result = subprocess.run(["umount", str(mountpoint)], capture_output=True, text=True)
        if result.returncode == 0 or not is_mounted(mountpoint):
            return
        if time.monotonic() > deadline:
            _run("umount", "--lazy", mountpoint)
            return
        time.sleep(0.2)


@contextlib.contextmanager
def loop_mounted(fs: str, directory: Path, size: int) -> Iterator[Path]:
    """A new, empty `fs` file system of `size` bytes mounted at `directory/mnt` (its backing file
    is `directory/fs.img`, sparse); unmounted, detached and deleted on the way out."""
    directory.mkdir(parents=True, exist_ok=True)
    image, mountpoint = directory / "fs.img", directory / "mnt"
    mountpoint.mkdir()
    try:
        with open(image, "wb") as backing:
            backing.truncate(max(size, MINIMUM[fs]))
        _run(*MKFS[fs], image)
        device = _run("losetup", "--find", "--show", image).strip()
        try:
            _run("mount", "-t", fs, device, mountpoint)
            try:
                yield mountpoint
            finally:
                _unmount(mountpoint)
        finally:
            _run("losetup", "--detach", device)
    finally:
        image.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            mountpoint.rmdir()


def extents(path: Path) -> list[tuple[int, int, int, set[str]]]:
    """The file's extents as `filefrag -v -s` (synced first) reports them: logical block, physical
    block, length in blocks and flags (`shared` for a block another file also maps)."""
    found = []
    for line in _run("filefrag", "-v", "-s", path).splitlines():
        fields = line.replace(":", " ").replace("..", " ").split()
        if len(fields) < 6 or not fields[0].isdigit():
            continue
        # ext: logical_start logical_end physical_start physical_end length [expected] flags
        logical, physical, length = int(fields[1]), int(fields[3]), int(fields[5])
        flags = set(fields[-1].split(",")) if not fields[-1].isdigit() else set()
        found.append((logical, physical, length, flags))
    return found


def block_map(path: Path) -> dict[int, int]:
    """Logical block → physical block for every block of the file that holds data: not a hole, nor
    an unwritten extent (space XFS allocated ahead of writes, which reads as zeros and which a
    reflink leaves out)."""
    return {
        logical + i: physical + i
        for logical, physical, length, flags in extents(path)
        if "unwritten" not in flags
        for i in range(length)
    }


def shared_blocks(path: Path) -> set[int]:
    """The file's logical blocks the file system flags shared (another file maps them too)."""
    return {logical + i for logical, _, length, flags in extents(path) if "shared" in flags for i in range(length)}


__all__ = ["block_map", "extents", "shared_blocks", "is_mounted", "loop_mounted", "unavailable"]
