"""The NoCloud seed ISO: built by the real xorriso, read back by it (volume label, both files),
private, replaced whole, removed."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from elastic_api.errors import FailedError
from elastic_api.model.cloudinit import Customization, render_meta_data, render_user_data, sha512_crypt
from elastic_api.storage.seed import Seeds

pytestmark = pytest.mark.skipif(shutil.which("xorriso") is None, reason="xorriso (scripts/setup.sh) is not installed")

SERVER = "5f3c1a8e-2b7d-4c1e-9a0f-0123456789ab"


def read_iso(iso: Path, into: Path) -> tuple[str, dict[str, str]]:
    """The ISO's volume label and its files, as the guest's kernel would show them (Rock Ridge)."""
    info = subprocess.run(["xorriso", "-indev", str(iso), "-pvd_info"], capture_output=True, text=True, check=True)
    label = next(line.split(":", 1)[1].strip() for line in info.stdout.splitlines() if line.startswith("Volume Id"))
    into.mkdir()
    subprocess.run(
        ["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", "/", str(into)], capture_output=True, check=True
    )
    return label, {p.name: p.read_text() for p in into.iterdir()}


async def test_seed_holds_cidata_with_both_files(tmp_path: Path) -> None:
    seeds = Seeds(tmp_path / "seeds")
    c = Customization("ec100001", SERVER, password_hash=sha512_crypt("pw", "saltsalt"), script="echo hi\n")
    path = await seeds.write(SERVER, render_meta_data(c), render_user_data(c))
    assert path == tmp_path / "seeds" / f"{SERVER}.iso"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "seeds").stat().st_mode) == 0o700
    label, files = read_iso(path, tmp_path / "out")
    assert label == "cidata"
    assert files == {"meta-data": render_meta_data(c), "user-data": render_user_data(c)}
    assert [p.name for p in (tmp_path / "seeds").iterdir()] == [path.name]  # no temporary left
    assert await seeds.exists(SERVER)

    # Rebuilt in place: the new content, still one file.
    c2 = Customization("renamed", SERVER)
    await seeds.write(SERVER, render_meta_data(c2), render_user_data(c2))
    assert read_iso(path, tmp_path / "out2")[1]["meta-data"] == render_meta_data(c2)

    await seeds.remove(SERVER)
    assert not path.exists() and not await seeds.exists(SERVER)
    await seeds.remove(SERVER)  # gone already: fine


async def test_failed_build_leaves_nothing(tmp_path: Path) -> None:
    seeds = Seeds(tmp_path / "seeds", xorriso=str(tmp_path / "no-such-xorriso"))
    with pytest.raises(FailedError):
        await seeds.write(SERVER, "a", "b")
    assert list((tmp_path / "seeds").iterdir()) == []
    broken = Seeds(tmp_path / "seeds2", xorriso="false")
    with pytest.raises(FailedError):
        await broken.write(SERVER, "a", "b")
    assert list((tmp_path / "seeds2").iterdir()) == []


def test_seed_path_needs_a_uuid(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Seeds(tmp_path).path("../etc/passwd")


async def test_seeds_are_listed_by_server(tmp_path: Path) -> None:
    seeds = Seeds(tmp_path / "seeds")
    assert await seeds.servers() == []
    await seeds.write(SERVER, "a", "b")
    (tmp_path / "seeds" / "not-a-seed.txt").write_text("x")
    assert await seeds.servers() == [SERVER]
