"""The seed on a real domain (qemu:///system, `elastic-api serve`, the ecsapi client): an ECS
create with a key, a password and a script boots a guest whose libvirt domain has the seed as a
read-only SATA cdrom; power off and on keep it; delete removes it; the server's log never holds
the password. (That a guest reads it is helper E's real-guest test.)"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt
import pytest

os.environ["ECSAPI_ENV_FILE"] = "/dev/null"  # a stray ./.env must not steer the client

from ecsapi import ServerCreateRequest  # noqa: E402

from tests.api.ecs.conftest import ssh_key  # noqa: E402
from tests.api.ecs.test_ecsapi_servers import client, engine_server, serial  # noqa: E402
from tests.api.ecs.test_ecsapi_servers import served as served  # noqa: E402, F401  (the fixture)
from tests.hypervisor.bootsector_image import BOOT_MARKER  # noqa: E402
from tests.support import GUEST_DEADLINE, wait_until  # noqa: E402

pytestmark = [pytest.mark.libvirt, pytest.mark.timeout(6 * GUEST_DEADLINE)]
PASSWORD = "Real-Libvirt-Password-42"


def cdroms(uri: str, uuid: str) -> list[ET.Element]:
    conn = libvirt.open(uri)
    try:
        root = ET.fromstring(conn.lookupByUUIDString(uuid).XMLDesc(0))
    finally:
        conn.close()
    return root.findall("devices/disk[@device='cdrom']")


def test_the_seed_is_a_read_only_cdrom_of_the_booted_domain(served, system_libvirt: str) -> None:
    config, server, user, secret, token = served
    api = client(server, token)
    api.create_ssh_key(ssh_key(comment="me@laptop"), "laptop")
    made, action_id = api.create_server(
        ServerCreateRequest(
            plan="ECS1",
            image="boot-sector-1",
            location="local",
            ssh_key="laptop",
            password=PASSWORD,
            user_customize="#!/bin/sh\necho hello > /root/hello\n",
        )
    )
    assert api.watch_action(action_id, fetch_every=0.5).status == "completed"
    uuid = engine_server(server, user, secret, made.name)
    seed = Path(config).parent / "var" / "seeds" / f"{uuid}.iso"
    # The domain booted with the cdrom attached: the boot sector's output on the serial log.
    wait_until(lambda: BOOT_MARKER in serial(config, uuid), "the guest's boot output", GUEST_DEADLINE)
    for run in (1, 2):
        [cdrom] = cdroms(system_libvirt, uuid)
        source, target = cdrom.find("source"), cdrom.find("target")
        assert source is not None and source.get("file") == str(seed)
        assert target is not None and target.attrib == {"dev": "sdz", "bus": "sata"}
        assert cdrom.find("readonly") is not None and cdrom.find("boot") is None
        assert seed.is_file() and seed.stat().st_mode & 0o777 == 0o600
        if run == 1:  # off and on again: a new domain, the same seed
            assert api.watch_action(api.turn_off_server(made.name).id, fetch_every=0.5).status == "completed"
            assert seed.is_file()
            assert api.watch_action(api.turn_on_server(made.name).id, fetch_every=0.5).status == "completed"
            wait_until(lambda: serial(config, uuid).count(BOOT_MARKER) >= 2, "the second boot", GUEST_DEADLINE)
    assert PASSWORD.encode() not in seed.read_bytes()
    assert api.watch_action(api.delete_server(made.name).id, fetch_every=0.5).status == "completed"
    assert not seed.exists()
    log = server.log.read_text(errors="replace")
    assert PASSWORD not in log
    assert f"ECS server {made.name}: customization script did not report its end within 5 s" in log
