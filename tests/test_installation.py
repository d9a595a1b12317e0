"""The installation ID file: made once, read on every start, never silently replaced."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from elastic_api.errors import ConfigError
from elastic_api.installation import load_or_create, path_of
from elastic_api.model.ids import is_id
from tests.support import run_cli, write_config


def test_made_at_first_start_then_read(tmp_path: Path) -> None:
    data = tmp_path / "var"
    first = load_or_create(data)
    assert is_id(first) and path_of(data).read_text() == first + "\n"
    assert load_or_create(data) == first
    assert [p.name for p in data.iterdir()] == ["installation-id"]  # no temporary file left
    assert load_or_create(tmp_path / "other") != first


def test_concurrent_first_starts_agree(tmp_path: Path) -> None:
    found: list[str] = []
    threads = [threading.Thread(target=lambda: found.append(load_or_create(tmp_path))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 1 and path_of(tmp_path).read_text() == found[0] + "\n"


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\n",
        b"not-a-uuid\n",
        b"1A57A11A-0000-4000-8000-000000000001\n",
        b"1a57a11a-0000-4000-8000-00000000000\n",
        b"\xff\xfe" * 10,
        b"x" * 10_000,
    ],
)
def test_a_corrupt_file_is_a_config_error_and_is_kept(tmp_path: Path, content: bytes) -> None:
    path_of(tmp_path).write_bytes(content)
    with pytest.raises(ConfigError, match="does not hold an installation ID"):
        load_or_create(tmp_path)
    assert path_of(tmp_path).read_bytes() == content


def test_surrounding_whitespace_is_fine(tmp_path: Path) -> None:
    path_of(tmp_path).write_text("  1a57a11a-0000-4000-8000-000000000001 \n\n")
    assert load_or_create(tmp_path) == "1a57a11a-0000-4000-8000-000000000001"


def test_not_a_file(tmp_path: Path) -> None:
    path_of(tmp_path).mkdir()
    with pytest.raises(ConfigError, match="installation ID file"):
        load_or_create(tmp_path)


def test_every_command_uses_it(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = run_cli(config, "image", "list")
    assert result.returncode == 0, result.stderr
    installation = path_of(tmp_path / "var").read_text().strip()
    assert is_id(installation)
    assert run_cli(config, "user", "create").returncode == 0
    assert path_of(tmp_path / "var").read_text().strip() == installation

    path_of(tmp_path / "var").write_text("garbage\n")
    for args in (("image", "list"), ("user", "create"), ("serve",)):
        result = run_cli(config, *args)
        assert result.returncode == 2 and "installation ID" in result.stderr and "Traceback" not in result.stderr
    assert path_of(tmp_path / "var").read_text() == "garbage\n"
