"""libvirt secrets for encrypted drives on the real libvirtd: defined with a guest, gone with it,
never left behind by a failed start, swept at start-up; hosts without secrets are no trouble."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator

import libvirt
import pytest

from elastic_api.config import HostConfig
from elastic_api.errors import FailedError
from elastic_api.hypervisor.domain import DiskSpec, DomainSpec, domain_xml, secret_owner, secret_xml
from elastic_api.hypervisor.libvirt import LibvirtHypervisor
from elastic_api.api.elastichosts.codec.server import parse_config
from tests.hypervisor.conftest import INSTALLATION

HOST = "local"


@pytest.fixture
async def hypervisor(system_libvirt: str) -> AsyncIterator[LibvirtHypervisor]:
    hypervisor = LibvirtHypervisor([HostConfig(HOST, system_libvirt)], installation=INSTALLATION)
    await hypervisor.open()
    try:
        yield hypervisor
    finally:
        await hypervisor.close()


@pytest.fixture
def conn(system_libvirt: str) -> Iterator[libvirt.virConnect]:
    conn = libvirt.open(system_libvirt)
    yield conn
    conn.close()


def ours(conn: libvirt.virConnect, server: str) -> list[str]:
    return [
        s.UUIDString()
        for s in conn.listAllSecrets(0)
        if secret_owner(ET.fromstring(s.XMLDesc(0)).findtext("description") or "")[0] == server
    ]


def define(conn: libvirt.virConnect, server: str, installation: str | None = INSTALLATION) -> str:
    secret = str(uuid.uuid4())
    xml = (
        secret_xml(secret, server, installation)
        if installation
        else f"<secret ephemeral='yes' private='yes'><uuid>{secret}</uuid>"
        f"<description>elastic-{server}</description></secret>"
    )  # as made before installation IDs
    conn.secretDefineXML(xml, 0).setValue(b"passphrase", 0)
    return secret


@pytest.mark.libvirt
async def test_a_failed_start_leaves_no_secret(hypervisor, conn, tmp_path):
    server, secret = str(uuid.uuid4()), str(uuid.uuid4())
    config = parse_config({"name": "x", "cpu": "500", "mem": "64", "block:0": str(uuid.uuid4())}, server)
    missing = DiskSpec(str(tmp_path / "missing.luks"), "raw", secret=secret)
    xml = domain_xml(
        DomainSpec(
            server=server,
            config=config,
            disks={config.drives[0].device: missing},
            serial_log=str(tmp_path / "serial.log"),
            domain_type="qemu",
            installation=INSTALLATION,
        )
    )
    with pytest.raises(FailedError):
        await hypervisor.start(HOST, xml, {secret: b"passphrase"})
    assert ours(conn, server) == []
    with pytest.raises(libvirt.libvirtError):
        conn.secretLookupByUUIDString(secret)


@pytest.mark.libvirt
async def test_secrets_are_removed_per_server_and_swept_at_start_up(hypervisor, conn):
    running, stopped, other = (str(uuid.uuid4()) for _ in range(3))
    foreign = str(uuid.uuid4())  # not ours: no elastic- description, never touched
    conn.secretDefineXML(f"<secret ephemeral='yes' private='yes'><uuid>{foreign}</uuid></secret>", 0)
    try:
        kept, gone = define(conn, running), define(conn, stopped)
        define(conn, other)
        await hypervisor.sweep_secrets({running})
        assert ours(conn, running) == [kept] and ours(conn, stopped) == [] and ours(conn, other) == []
        with pytest.raises(libvirt.libvirtError):
            conn.secretLookupByUUIDString(gone)
        await hypervisor.remove_secrets(HOST, running)
        assert ours(conn, running) == []
        await hypervisor.remove_secrets(HOST, running)  # again: nothing to do, no error
        assert conn.secretLookupByUUIDString(foreign).UUIDString() == foreign
    finally:
        conn.secretLookupByUUIDString(foreign).undefine()


@pytest.mark.libvirt
async def test_only_our_secrets_are_swept_and_removed(hypervisor, conn):
    other_installation = str(uuid.uuid4())
    server, theirs, legacy, stranger = (str(uuid.uuid4()) for _ in range(4))
    kept = [
        define(conn, theirs, other_installation),
        define(conn, server, other_installation),
        define(conn, stranger, None),
    ]
    try:
        swept_legacy = define(conn, legacy, None)
        await hypervisor.sweep_secrets(set(), adopt={legacy, server, theirs})
        # Another installation's, even for a server UUID we name, and one without an ID that we
        # do not adopt: untouched. One without an ID whose server we adopt: ours, and swept.
        for secret in kept:
            assert conn.secretLookupByUUIDString(secret).UUIDString() == secret
        with pytest.raises(libvirt.libvirtError):
            conn.secretLookupByUUIDString(swept_legacy)
        mine, old = define(conn, server), define(conn, server, None)
        await hypervisor.remove_secrets(HOST, server)  # ours, and ours from before IDs; not another's
        assert ours(conn, server) == [kept[1]]
        for secret in (mine, old):
            with pytest.raises(libvirt.libvirtError):
                conn.secretLookupByUUIDString(secret)
    finally:
        for secret in kept:
            conn.secretLookupByUUIDString(secret).undefine()


async def test_hosts_without_secrets_have_none_to_remove(test_hypervisor):
    await test_hypervisor.remove_secrets("test", str(uuid.uuid4()))
    await test_hypervisor.sweep_secrets(set())
