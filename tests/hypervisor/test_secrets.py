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
from elastic_api.hypervisor.domain import DiskSpec, DomainSpec, domain_xml, secret_xml
from elastic_api.hypervisor.libvirt_driver import LibvirtHypervisor
from elastic_api.model.server import parse_config
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
    return [s.UUIDString() for s in conn.listAllSecrets(0)
            if ET.fromstring(s.XMLDesc(0)).findtext("description") == f"elastic-{server}"]


def define(conn: libvirt.virConnect, server: str) -> str:
    secret = str(uuid.uuid4())
    conn.secretDefineXML(secret_xml(secret, server, INSTALLATION), 0).setValue(b"passphrase", 0)
    return secret


@pytest.mark.libvirt
async def test_a_failed_start_leaves_no_secret(hypervisor, conn, tmp_path):
    server, secret = str(uuid.uuid4()), str(uuid.uuid4())
    config = parse_config({"name": "x", "cpu": "500", "mem": "64", "block:0": str(uuid.uuid4())}, server)
    missing = DiskSpec(str(tmp_path / "missing.luks"), "raw", secret=secret)
    xml = domain_xml(DomainSpec(server=server, config=config, disks={"block:0": missing},
                                serial_log=str(tmp_path / "serial.log"), domain_type="qemu",
                                installation=INSTALLATION))
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


async def test_hosts_without_secrets_have_none_to_remove(test_hypervisor):
    await test_hypervisor.remove_secrets("test", str(uuid.uuid4()))
    await test_hypervisor.sweep_secrets(set())
