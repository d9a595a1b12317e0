"""Hypervisor.samples on libvirt's in-process test driver: one bulk call that answers only the
named servers of this installation (another installation's never, one without an ID adopted
when named). The test driver reports no counters, so the samples hold zeros; the real host's
counters are checked in tests/api/test_metrics_libvirt.py."""

from __future__ import annotations

import time
import uuid

import libvirt

from elastic_api.hypervisor.libvirt import LibvirtHypervisor
from tests.hypervisor.conftest import server_xml
from tests.hypervisor.test_installations import legacy_xml, other_xml


async def test_samples_answer_only_our_named_servers(test_hypervisor: LibvirtHypervisor) -> None:
    mine, unnamed, theirs, legacy = (str(uuid.uuid4()) for _ in range(4))
    conn = libvirt.open("test:///default")
    try:
        await test_hypervisor.start("test", server_xml(mine))
        await test_hypervisor.start("test", server_xml(unnamed))
        conn.createXML(other_xml(theirs), 0)
        conn.createXML(legacy_xml(legacy), 0)
        before = time.time()
        samples = await test_hypervisor.samples("test", {mine, theirs, legacy, str(uuid.uuid4())})
        assert sorted(s.server for s in samples) == sorted([mine, legacy])
        assert all(before <= s.at <= time.time() and s.cpu_ns >= 0 for s in samples)
        # Named once, a domain without an ID is adopted, as running() adopts it.
        assert legacy in await test_hypervisor.running()
        assert await test_hypervisor.samples("test", set()) == []
    finally:
        for server in (mine, unnamed):
            await test_hypervisor.stop("test", server)
        for server in (theirs, legacy):
            try:
                conn.lookupByUUIDString(server).destroy()
            except libvirt.libvirtError:
                pass
        conn.close()
