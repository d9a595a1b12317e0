"""House style holds: ruff and mypy are clean over the package and the tests (setup.cfg lists both),
and ruff format is their one formatter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def test_ruff_is_clean():
    result = run(str(BIN / "ruff"), "check", "--output-format", "concise", "elastic_api", "tests", "scripts")
    assert result.returncode == 0, result.stdout + result.stderr


def test_one_formatter_over_the_whole_tree():
    """`ruff format` (line length 120, ruff.toml) leaves every file as it is: one style, no
    formatting noise in reviews. Tables read by columns opt out with `# fmt: off`."""
    result = run(str(BIN / "ruff"), "format", "--check", "elastic_api", "tests", "scripts")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean():
    result = run(str(BIN / "mypy"), "--cache-dir", "/tmp/elastic-api-mypy-cache")
    assert result.returncode == 0, result.stdout + result.stderr
