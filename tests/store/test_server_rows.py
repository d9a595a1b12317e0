"""Server rows: the typed JSON the store keeps, and rows the program wrote before it (ElasticHosts
props) converted by the migration and loaded as they were."""

from __future__ import annotations

import json
import sqlite3

import pytest

from elastic_api.errors import BusyError
from elastic_api.model.cloudinit import GuestSetup
from elastic_api.model.device import Device
from elastic_api.model.server import DriveSlot, Nic, ServerConfig
from elastic_api.model.server_record import ACTIVE, STOPPED, ServerRecord
from elastic_api.store import legacy_server_rows, server_rows
from elastic_api.store.migrations import MIGRATIONS
from elastic_api.store.sqlite import SqliteStore, _statements

ALICE = "a11ce000-0000-4000-8000-000000000000"
FULL_ID = "5e7e0000-0000-4000-8000-00000000000b"
SMALL_ID = "5e7e0000-0000-4000-8000-00000000000d"
OLD_NAME_ID = "5e7e0000-0000-4000-8000-00000000000e"
VLAN = "0ddba11a-0000-4000-8000-000000000000"
D = [f"d000000{n}-0000-4000-8000-000000000000" for n in range(4)]
# Rows exactly as the code before typed rows wrote them: json.dumps(to_props(config)).
OLD_FULL_ROW = (
    '{"name": "db server", "cpu": "3000", "smp": "2", "mem": "2048", "persistent": "true", '
    '"ide:0:0": "d0000000-0000-4000-8000-000000000000", "ide:0:0:media": "disk", '
    '"ide:1:0": "d0000001-0000-4000-8000-000000000000", "ide:1:0:media": "cdrom", '
    '"block:3": "d0000002-0000-4000-8000-000000000000", "block:3:media": "disk", '
    '"boot": "ide:1:0 nic:1 ide:0:0", "nic:0:model": "e1000", "nic:0:dhcp": "192.0.2.10", '
    '"nic:0:mac": "02:e8:d9:7b:1f:5d", "nic:1:model": "virtio", '
    '"nic:1:vlan": "0ddba11a-0000-4000-8000-000000000000", "nic:1:mac": "02:ab:cd:00:00:01", '
    '"vnc": "auto", "vnc:password": "s3cret", "vnc:tls": "on", "tags": "db prod", "user:owner": "team a", '
    '"avoid:drives": "d0000003-0000-4000-8000-000000000000", '
    '"avoid:servers": "5e7e0000-0000-4000-8000-00000000000c"}'
)
OLD_SMALL_ROW = '{"name": "web", "cpu": "500", "smp": "auto", "mem": "64", "persistent": "false"}'
# Stored before the control-character rule: the row loads as it is.
OLD_NAME_ROW = (
    '{"name": "tab\\there", "cpu": "100", "smp": "auto", "mem": "16", "persistent": "true", "tags": "a\\u0007"}'
)

FULL = ServerConfig(
    name="db server",
    cpu=3000,
    mem=2048,
    smp=2,
    persistent=True,
    drives=(
        DriveSlot(Device("ide", 0, 0), D[0]),
        DriveSlot(Device("ide", 1, 0), D[1], "cdrom"),
        DriveSlot(Device("virtio", 0, 3), D[2]),
    ),
    boot=(Device("ide", 1, 0), 1, Device("ide", 0, 0)),
    nics=(Nic(0, "e1000", "02:e8:d9:7b:1f:5d", dhcp="192.0.2.10"), Nic(1, "virtio", "02:ab:cd:00:00:01", vlan=VLAN)),
    vnc="auto",
    vnc_password="s3cret",
    vnc_tls=True,
    tags=("db", "prod"),
    user=(("owner", "team a"),),
    avoid_drives=(D[3],),
    avoid_servers=("5e7e0000-0000-4000-8000-00000000000c",),
)
SMALL = ServerConfig(name="web", cpu=500, mem=64)


SEEDED = ServerConfig(
    name="seeded",
    cpu=500,
    mem=64,
    cloudinit=GuestSetup(("ssh-ed25519 AAAA k",), "$6$salt$" + "h" * 86, "echo hi\n", (("A", "b c"),)),
)


def test_typed_rows_round_trip() -> None:
    for config in (FULL, SMALL, SEEDED, ServerConfig(name="empty seed", cpu=500, mem=64, cloudinit=GuestSetup())):
        assert server_rows.load(server_rows.dump(config)) == config


def test_the_cloudinit_key_is_written_only_when_set() -> None:
    """Rows written before the key load without a seed; a seed's setup is written so."""
    assert "cloudinit" not in json.loads(server_rows.dump(SMALL))
    assert json.loads(server_rows.dump(SEEDED))["cloudinit"] == {
        "ssh_keys": ["ssh-ed25519 AAAA k"],
        "password_hash": "$6$salt$" + "h" * 86,
        "script": "echo hi\n",
        "script_env": [["A", "b c"]],
    }


def test_the_typed_row_format_is_fixed() -> None:
    """Golden: rows already written must keep loading, so the format changes only with its version."""
    assert json.loads(server_rows.dump(SMALL)) == {
        "v": 1,
        "name": "web",
        "cpu": 500,
        "mem": 64,
        "smp": None,
        "persistent": False,
        "drives": [],
        "boot": [],
        "nics": [],
        "vnc": None,
        "vnc_password": None,
        "vnc_tls": False,
        "tags": [],
        "user": {},
        "avoid_drives": [],
        "avoid_servers": [],
    }
    row = json.loads(server_rows.dump(FULL))
    assert row["drives"][2] == {"bus": "virtio", "controller": 0, "unit": 3, "drive": D[2], "media": "disk"}
    assert row["boot"] == [
        {"bus": "ide", "controller": 1, "unit": 0},
        {"nic": 1},
        {"bus": "ide", "controller": 0, "unit": 0},
    ]
    assert row["nics"][1] == {"index": 1, "model": "virtio", "mac": "02:ab:cd:00:00:01", "dhcp": None, "vlan": VLAN}
    assert row["user"] == {"owner": "team a"}


@pytest.mark.parametrize("text", ['{"name": "x"}', '{"v": 2, "name": "x"}'])
def test_a_row_of_unknown_version_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="version"):
        server_rows.load(text)


def test_the_legacy_reader_reads_old_rows() -> None:
    assert legacy_server_rows.read(json.loads(OLD_FULL_ROW)) == FULL
    assert legacy_server_rows.read(json.loads(OLD_SMALL_ROW)) == SMALL
    old_name = legacy_server_rows.read(json.loads(OLD_NAME_ROW))
    assert (old_name.name, old_name.tags) == ("tab\there", ("a\x07",))


def old_database(path) -> None:
    """A database as the code before typed rows left it: schema version 6, rows in its format."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA foreign_keys = ON")
    for script in MIGRATIONS[:6]:
        assert isinstance(script, str)
        for statement in _statements(script):
            db.execute(statement)
    db.execute("PRAGMA user_version = 6")
    db.execute("INSERT INTO users (id, name, secret_hash, created) VALUES (?, 'alice', ?, 1)", (ALICE, b"h" * 32))
    db.execute(
        "INSERT INTO resources (id, type, owner, name, keys, created) VALUES (?, 'vlan', ?, 'v', '{}', 1)",
        (VLAN, ALICE),
    )
    db.execute(
        "INSERT INTO resources (id, type, owner, name, keys, created) VALUES ('192.0.2.10', 'ip', ?, 'i', '{}', 2)",
        (ALICE,),
    )
    rows = [
        (FULL_ID, OLD_FULL_ROW, ACTIVE, "h1", 1234, 1),
        (SMALL_ID, OLD_SMALL_ROW, ACTIVE, "h1", 1235, 2),
        (OLD_NAME_ID, OLD_NAME_ROW, STOPPED, None, None, 3),
    ]
    db.executemany(
        "INSERT INTO servers (id, owner, config, status, host, started, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(sid, ALICE, config, status, host, started, created) for sid, config, status, host, started, created in rows],
    )
    db.close()


async def test_rows_written_by_the_old_code_load_after_the_migration(tmp_path) -> None:
    path = tmp_path / "elastic.db"
    old_database(path)
    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.get_server(ALICE, FULL_ID) == ServerRecord(FULL_ID, ALICE, FULL, 1, ACTIVE, "h1", 1234)
        assert (await store.get_server(ALICE, SMALL_ID)).config == SMALL  # type: ignore[union-attr]
        old_name = await store.get_server(ALICE, OLD_NAME_ID)
        assert old_name is not None and old_name.config.name == "tab\there" and old_name.config.persistent
        # cpu and mem are columns now, and the quota usage sums the active servers' in SQL.
        usage = await store.usage(ALICE)
        assert (usage.servers, usage.cpu, usage.mem) == (3, 3500, 2112)
        # What servers name is found in the typed rows: the VLAN and the IP stay in use.
        with pytest.raises(BusyError, match=FULL_ID):
            await store.delete_resource(ALICE, "vlan", VLAN)
        with pytest.raises(BusyError, match=FULL_ID):
            await store.delete_resource(ALICE, "ip", "192.0.2.10")
        rows = dict(store.db.execute("SELECT id, config FROM servers").fetchall())
        assert all(json.loads(text)["v"] == 1 for text in rows.values())
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    finally:
        await store.close()


async def test_typed_rows_keep_cpu_and_mem_columns_current(store) -> None:
    await store.create_user(ALICE, "alice", b"h" * 32, 1)
    await store.insert_server(ServerRecord(SMALL_ID, ALICE, SMALL, created=1))
    await store.activate_server(ALICE, SMALL_ID, "h", 1, [])
    assert ((await store.usage(ALICE)).cpu, (await store.usage(ALICE)).mem) == (500, 64)
    bigger = ServerRecord(SMALL_ID, ALICE, ServerConfig(name="web", cpu=800, mem=128), created=1)
    assert await store.update_server_config(ALICE, bigger)
    assert ((await store.usage(ALICE)).cpu, (await store.usage(ALICE)).mem) == (800, 128)
    assert store.db.execute("SELECT cpu, mem FROM servers").fetchall() == [(800, 128)]
