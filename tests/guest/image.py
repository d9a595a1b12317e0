"""The real-guest test's Debian image (scripts/build_test_guest.sh), built once and cached.

The cache is ELASTIC_TEST_CACHE, else $XDG_CACHE_HOME/elastic-api-tests, else
~/.cache/elastic-api-tests; the image's name carries a hash of the build script and the mirror, so a
changed script builds a new one (older ones are removed). A lock file keeps two test processes
from building at once."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "build_test_guest.sh"
MIRROR = os.environ.get("ELASTIC_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
TOOLS = ("debootstrap", "mkfs.ext4", "mkfs.vfat", "mcopy", "syslinux", "sfdisk", "genisoimage")
BUILD_TIMEOUT = 1800  # seconds: about 100 s here; a slow mirror or a busy machine gets room


def cache_dir() -> Path:
    if os.environ.get("ELASTIC_TEST_CACHE"):
        return Path(os.environ["ELASTIC_TEST_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "elastic-api-tests"


def image_key() -> str:
    return hashlib.sha256(SCRIPT.read_bytes() + MIRROR.encode()).hexdigest()[:16]


def _lacking(message: str) -> None:
    # scripts/test.sh installs the tools (scripts/setup.sh) and sets this: there they must be.
    if os.environ.get("ELASTIC_TEST_REQUIRE_LIBVIRT") == "1":
        pytest.fail(message)
    pytest.skip(message)


def guest_image() -> Path:
    """The cached image's path, building it first when missing."""
    directory = cache_dir()
    path = directory / f"debian-cloud-init-{image_key()}.raw"
    if path.exists():
        return path
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        _lacking(f"building the test guest needs {', '.join(missing)}: run scripts/setup.sh")
    if os.geteuid() != 0:
        _lacking("building the test guest needs root (debootstrap's chroot)")
    try:
        urllib.request.urlopen(f"{MIRROR}/dists/bookworm/Release", timeout=30).close()
    except OSError as e:
        _lacking(f"the Debian mirror {MIRROR} is not reachable ({e}); the test guest cannot be built")
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".build.lock", "w") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if not path.exists():  # another process may have built it while this one waited
            for old in directory.glob("debian-cloud-init-*.raw"):
                old.unlink()
            subprocess.run(["bash", str(SCRIPT), str(path)], check=True, timeout=BUILD_TIMEOUT)
    return path
