"""The real program on the default config, on the real libvirtd, in a directory of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from elastic_api.config import Config
from tests.support import Installation, network_exists, remove_guests_under, remove_network_if_unused


@pytest.fixture
def installation(system_libvirt: str, tmp_path: Path) -> Iterator[Installation]:
    """Stopped (SIGTERM) at the end if the test did not stop it; then any guest the test left on the
    real libvirtd is destroyed, and the default public network too when this test made it."""
    public = Config().public_network
    had_public = network_exists(system_libvirt, public)
    installation = Installation(tmp_path / "home")
    try:
        yield installation
    finally:
        try:
            installation.stop()
        finally:
            remove_guests_under(system_libvirt, installation.directory)
            if not had_public:
                remove_network_if_unused(system_libvirt, public)
