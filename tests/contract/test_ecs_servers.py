"""The store contract for ECS servers' rows, their isolation pairs and their actions (the jobs of
the ECS kinds), and the quota an ECS create holds in its row until its action makes the parts."""

from __future__ import annotations

import dataclasses

from elastic_api.model.cloudinit import GuestSetup
from elastic_api.model.ecs import BOOTED, BOOTING, NEW, EcsServer, server_name
from elastic_api.model.ids import new_id
from elastic_api.model.job import CONSOLE, CREATE_SERVER, DONE, IMAGE, POWER_ON, ActionParams, ImageParams, Job
from tests.contract.conftest import users


def ecs_server(owner: str, created: int = 1, **changes: object) -> EcsServer:
    server = EcsServer(
        0,
        owner,
        "ECS1",
        1,
        1024,
        10,
        2000,
        new_id(),
        "debian12",
        "Debian 12",
        "it-fr2",
        "n",
        None,
        None,
        BOOTING,
        NEW,
        0,
        None,
        None,
        "",
        created,
    )
    return dataclasses.replace(server, **changes)  # type: ignore[arg-type]


async def test_ecs_server_rows_are_numbered_owned_and_changed_field_by_field(contract_store):
    store = contract_store
    alice, bob = await users(store)
    first = await store.insert_ecs_server(ecs_server(alice, 1), [])
    second = await store.insert_ecs_server(ecs_server(alice, 2, notes="two"), [first.id])
    theirs = await store.insert_ecs_server(ecs_server(bob, 3), [])
    assert 0 < first.id < second.id < theirs.id and second.notes == "two" and second.status == BOOTING
    assert await store.get_ecs_server(alice, first.id) == first
    assert await store.get_ecs_server(alice, theirs.id) is None
    assert await store.ecs_server_by_id(theirs.id) == theirs
    assert await store.list_ecs_servers(alice) == [first, second]
    assert [s.id for s in await store.list_ecs_servers(None)] == [first.id, second.id, theirs.id]
    assert [s.id for s in await store.ecs_partners(first.id)] == [second.id]
    assert [s.id for s in await store.ecs_partners(second.id)] == [first.id]

    drive, engine = new_id(), new_id()
    assert await store.update_ecs_server(
        first.id, drive=drive, server=engine, status=BOOTED, progress=100, ipv4="198.51.100.10"
    )
    got = await store.get_ecs_server(alice, first.id)
    assert (got.drive, got.server, got.status, got.progress, got.ipv4) == (drive, engine, BOOTED, 100, "198.51.100.10")
    assert await store.ecs_manager_of(drive) == await store.ecs_manager_of(engine) == server_name(first.id)
    assert await store.ecs_manager_of(new_id()) is None
    assert not await store.update_ecs_server(10**6, notes="x")

    group = await store.insert_group(alice, "", b"h", 1, limit=5)
    assert await store.update_ecs_server(second.id, group_id=group.id)
    assert (await store.get_ecs_server(alice, second.id)).group == group.id
    assert not await store.delete_group(bob, group.id)  # another user's: nothing
    assert (await store.get_ecs_server(alice, second.id)).group == group.id
    assert await store.delete_group(alice, group.id)  # its servers are detached (the foreign key)
    assert (await store.get_ecs_server(alice, second.id)).group is None

    assert await store.delete_ecs_server(first.id) and not await store.delete_ecs_server(first.id)
    assert await store.ecs_partners(second.id) == []  # the pair went with it


async def test_an_ecs_server_keeps_its_guest_setup(contract_store):
    """The cloud-init setup a create asked for comes back as it went in; a row without one has
    the empty setup (every ECS server's seed has at least its hostname and instance ID)."""
    store = contract_store
    alice, _ = await users(store)
    setup = GuestSetup(("ssh-ed25519 AAAA k",), "$6$salt$" + "h" * 86, "#!/bin/sh\necho 'ünï'\n", (("A", "b c"),))
    given = await store.insert_ecs_server(ecs_server(alice, 1, setup=setup), [])
    plain = await store.insert_ecs_server(ecs_server(alice, 2), [])
    assert given.setup == setup and (await store.get_ecs_server(alice, given.id)).setup == setup
    assert (await store.ecs_server_by_id(plain.id)).setup == GuestSetup()
    assert await store.update_ecs_server(given.id, status=BOOTED)
    assert [s.setup for s in await store.list_ecs_servers(alice)] == [setup, GuestSetup()]


async def test_an_ecs_create_holds_its_quota_in_its_row_until_released(contract_store):
    store = contract_store
    (alice,) = await users(store, 1)
    row = await store.insert_ecs_server(ecs_server(alice, ram_mb=2048, disk_gb=10, cpu=3000), [])
    usage = await store.usage(alice)
    assert (usage.drives, usage.drive_bytes, usage.servers, usage.cpu, usage.mem) == (1, 10 << 30, 1, 3000, 2048)
    assert await store.update_ecs_server(row.id, held_drive=0, held_server=0)
    usage = await store.usage(alice)
    assert (usage.drives, usage.servers, usage.cpu, usage.mem) == (0, 0, 3000, 2048)
    assert await store.update_ecs_server(row.id, held_run=0)
    assert await store.usage(alice) == type(usage)()


async def test_actions_are_the_ecs_kinds_of_jobs_kept_as_history(contract_store):
    store = contract_store
    alice, bob = await users(store)
    name = server_name(1)
    create = await store.add_job(Job(0, CREATE_SERVER, alice, name, ActionParams(), created=1))
    await store.add_job(Job(0, IMAGE, alice, name, ImageParams("s", ""), created=2))  # not an action
    console = await store.add_finished_job(Job(0, CONSOLE, alice, name, ActionParams(), DONE, created=3))
    assert (console.status, console.progress, console.finished) == (DONE, 100, 3)
    other = await store.add_job(Job(0, POWER_ON, alice, server_name(2), ActionParams(), created=4))
    assert [j.id for j in await store.ecs_actions(alice, None)] == [other.id, console.id, create.id]
    assert [j.id for j in await store.ecs_actions(alice, [name])] == [console.id, create.id]
    assert await store.ecs_actions(alice, []) == []
    assert await store.ecs_actions(bob, None) == []
    assert await store.ecs_action(alice, create.id) == create
    assert await store.ecs_action(bob, create.id) is None
    # Finished actions stay: each is history, not only the last.
    for job in (create, other):
        assert await store.claim_job(job.id, "n", 5, 100) is not None
        assert await store.finish_job(job.id, "n", DONE, None, 6)
    again = await store.add_job(Job(0, CREATE_SERVER, alice, name, ActionParams(), created=7))
    assert await store.claim_job(again.id, "n", 8, 100) is None  # the image job is first in line
    assert [j.id for j in await store.ecs_actions(alice, [name])] == [again.id, console.id, create.id]


async def test_an_ecs_servers_vlans_are_kept_in_order(contract_store):
    (alice,) = await users(contract_store, 1)
    vlans = (new_id(), new_id())
    made = await contract_store.insert_ecs_server(ecs_server(alice, vlans=vlans), [])
    assert made.vlans == vlans
    assert (await contract_store.get_ecs_server(alice, made.id)) == made
    assert [s.vlans for s in await contract_store.list_ecs_servers(alice)] == [vlans]
    plain = await contract_store.insert_ecs_server(ecs_server(alice), [])
    assert plain.vlans == ()
