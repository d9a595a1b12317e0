"""Two nodes racing on one PostgreSQL database and one host: two real applications in this process,
each with its own store pool and libvirt connection, on libvirt's test driver (test:///default,
whose state every connection of the process shares, as a real host's libvirtd is shared by the
nodes that reach it). What the nodes' in-process locks alone would let through:

- starts on both nodes at once, onto a host with room for three of them: three start;
- a guest's power-off seen by both nodes (each gets libvirt's event): applied once;
- two nodes starting while a third runs (so neither is alone) reconcile one host one after the
  other: a stray domain is powered off once.

Each of these fails with the PostgreSQL store's node locks turned into in-process ones."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from elastic_api.app import SERVICES, create_app
from elastic_api.config import Config, HostConfig
from elastic_api.hypervisor.libvirt import LibvirtHypervisor
from elastic_api.installation import load_or_create
from elastic_api.storage.pool import Pool
from elastic_api.store.postgres import PostgresStore
from tests.conftest import Api
from tests.postgres import fresh_database

HOST = "test:///default"


def node_app(data_dir: Path, url: str, name: str, mem_mb: int) -> Any:
    config = Config(
        data_dir=data_dir,
        hosts=(HostConfig("local", HOST, mem_mb=mem_mb),),
        default_cipher="none",
        database_url=url,
        node_name=name,
    )
    hypervisor = LibvirtHypervisor.from_config(config, load_or_create(config.data_dir))
    slow_starts(hypervisor)
    return create_app(
        config, store=PostgresStore(url), storage=Pool(config.pool_dir, config.images_dir), hypervisor=hypervisor
    )


def slow_starts(hypervisor: LibvirtHypervisor) -> None:
    """The test driver makes a domain in a millisecond; a real libvirtd takes a good part of a
    second to start QEMU, which is when another node's room check would count the memory free.
    So the starts here take their time between the room check and the domain's creation."""
    hosts = hypervisor._hosts
    call = hosts.call

    async def slow(host: str, what: str, fn: Any) -> Any:
        if what.startswith("start server"):
            await asyncio.sleep(0.1)
        return await call(host, what, fn)

    hosts.call = slow  # type: ignore[method-assign,assignment]


async def room(api: Api) -> int:
    return await api.client.app[SERVICES].servers.hypervisor.room_mb("local")


@pytest.fixture
async def nodes(serve: Any, tmp_path: Path) -> AsyncIterator[list[Api]]:
    # Room measured, not assumed: other tests of this process may have left guests on the host.
    async with fresh_database() as url:
        shared = tmp_path / "shared"
        clients = [await serve(node_app(shared, url, name, 100_000)) for name in ("a", "b")]
        try:
            user, secret = await clients[0].app[SERVICES].users.create()
            yield [Api(client, user, secret) for client in clients]
        finally:
            for client in clients:
                await client.close()  # before the database goes


async def server(api: Api, mem: int, *, persistent: bool = False) -> str:
    body = f"name s\ncpu 100\nmem {mem}\npersistent {str(persistent).lower()}\n"
    reply = await api.call("/servers/create/stopped", body)
    assert reply.status == 200, reply.text
    return reply.props()["server"]


async def test_two_nodes_never_both_place_onto_a_hosts_last_free_memory(nodes):
    a, b = nodes
    for _ in range(4):
        free = await room(a)
        mem = free // 4 + 1  # three fit, a fourth does not
        apis = [a, b] * 4
        servers = [await server(api, mem) for api in apis]
        started = await asyncio.gather(*(api.call(f"/servers/{sid}/start") for api, sid in zip(apis, servers)))
        statuses = [r.status for r in started]
        assert statuses.count(204) == 3, statuses
        assert await room(a) == free - 3 * mem >= 0
        for api, sid in zip(apis, servers):
            assert (await api.call(f"/servers/{sid}/destroy")).status == 204
        assert await room(b) == free


async def test_a_guests_power_off_seen_by_both_nodes_is_applied_once(nodes, caplog):
    a, b = nodes
    caplog.set_level(logging.INFO, logger="elastic_api.service.servers")
    for _ in range(4):
        sid = await server(a, 64, persistent=True)
        assert (await a.call(f"/servers/{sid}/start")).status == 204
        conn = libvirt.open(HOST)  # the guest's own power-off, as libvirt reports it to every node
        try:
            conn.lookupByUUIDString(sid).destroy()
        finally:
            conn.close()

        async def stopped(api: Api, sid: str = sid) -> bool:
            reply = await api.get(f"/servers/{sid}/info")
            return reply.props()["status"] == "stopped"

        async with asyncio.timeout(60):
            while not (await stopped(a) and await stopped(b)):
                await asyncio.sleep(0.02)
        # A window for the other node's event, which changes nothing when it is applied once:
        # there is no condition to wait for in "nothing else happened".
        await asyncio.sleep(0.2)
        lines = [r for r in caplog.records if r.getMessage() == f"server {sid} stopped"]
        assert len(lines) == 1, [r.getMessage() for r in caplog.records]
        assert (await b.call(f"/servers/{sid}/destroy")).status == 204


async def test_two_nodes_starting_at_once_reconcile_a_host_one_after_the_other(serve, tmp_path, caplog):
    """A node already running (c) makes neither starting node alone, so both reconcile the host
    at once but for its lock: strays (domains the database holds stopped) are powered off once."""
    caplog.set_level(logging.INFO, logger="elastic_api.service.servers")
    async with fresh_database() as url:
        shared = tmp_path / "shared"
        running = await serve(node_app(shared, url, "c", 100_000))
        clients = [running]
        try:
            user, secret = await running.app[SERVICES].users.create()
            api = Api(running, user, secret)
            strays = [await server(api, 64, persistent=True) for _ in range(3)]
            for sid in strays:
                assert (await api.call(f"/servers/{sid}/start")).status == 204
            store = running.app[SERVICES].servers.store
            for sid in strays:  # the database comes to hold them stopped: strays on the host
                assert await store.deactivate_server(user, sid)
            caplog.clear()
            clients += await asyncio.gather(*(serve(node_app(shared, url, name, 100_000)) for name in ("a", "b")))
            powered_off = [r.getMessage() for r in caplog.records if r.getMessage().startswith("powering off")]
            assert sorted(powered_off) == sorted(
                f"powering off domain of server {sid} on local: not active in the database" for sid in strays
            ), powered_off
            conn = libvirt.open(HOST)
            try:
                active = {dom.UUIDString() for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)}
            finally:
                conn.close()
            assert not active & set(strays)
        finally:
            for client in clients:
                await client.close()
