"""The isolation matrix: user B on user A's objects answers exactly like a UUID that does not exist.

Each `Probe` is one request B sends. Its path and body name A's objects through placeholders
(`{drive}`, `{server}` ...) and B's own through `{own_drive}`, `{own_server}`. Every probe is sent
twice: once naming A's objects, once with each of A's objects replaced by a stand-in that does not
exist. The two answers must be identical (status, every header but Date, body once the names are
swapped back), and A's objects must be unchanged afterwards (full info, bytes, running domains).

To cover a new endpoint, add rows to PROBES; for a new kind of object, add A's object to `victims`
and a stand-in of the same form to `stand_ins` in `world()` (an IP resource's stand-in is an
address nobody owns).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from elastic_api.app import SERVICES
from tests.conftest import Api, Reply

KiB = 1024
DATA = b"alice's bytes" * 100


COUNTERS = {"rx", "tx", "rx:packets", "tx:packets"}
DISK_COUNTERS = (":read:bytes", ":read:requests", ":write:bytes", ":write:requests")


@dataclass(frozen=True)
class Probe:
    method: str
    path: str
    body: bytes | dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 404  # what both answers must be


def _cfg(**keys: str) -> dict[str, Any]:
    return {"name": "b", "cpu": "1000", "mem": "256", **keys}


READS = [
    "/drives/{drive}/info",
    "/drives/{drive}/info/full",
    "/drives/{drive}/read/0/4k",
    "/drives/{drive}/read/0/1",
    "/drives/{drive}/checksum",
    "/drives/{drive}/checksum/0/4k",
    "/drives/{busy_drive}/info",
    "/drives/{busy_drive}/read/0/4k",
    "/servers/{server}/info",
    "/servers/{active}/info",
    "/servers/{server}/metrics",
    "/servers/{active}/metrics",
    "/resources/ip/{ip}/info",
    "/resources/vlan/{vlan}/info",
]

PROBES: tuple[Probe, ...] = (
    # Reads, by GET and by POST (real clients POST every command).
    *(Probe(method, path) for path in READS for method in ("GET", "POST")),
    # Changes to A's drives.
    *(Probe("POST", f"/drives/{{{d}}}/set", b"name stolen\n") for d in ("drive", "busy_drive")),
    Probe("POST", "/drives/{drive}/set", {"size": "2M", "readers": ["ffffffff-ffff-ffff-ffff-ffffffffffff"]}),
    Probe("POST", "/drives/{drive}/set", b"colour red\n", status=400),  # the body is checked first
    *(Probe("POST", f"/drives/{{{d}}}/destroy") for d in ("drive", "busy_drive")),
    Probe("POST", "/drives/{drive}/write", b"x" * 512),
    Probe("POST", "/drives/{drive}/write/4k", b"x" * 512),
    Probe("POST", "/drives/{drive}/write/0", gzip.compress(b"y" * 4096), {"Content-Encoding": "gzip"}),
    Probe("POST", "/drives/{drive}/write/100G", b"x"),  # past A's drive's end: still 404, not 507
    Probe("POST", "/drives/{busy_drive}/write/0", b"x"),  # claimed: still 404, not 409
    # Imaging: into A's drive, from A's drive into B's own, with each conversion.
    *(Probe("POST", f"/drives/{{drive}}/image/{{own_drive}}{c}") for c in ("", "/gzip", "/gunzip")),
    *(Probe("POST", f"/drives/{{own_drive}}/image/{{drive}}{c}") for c in ("", "/gzip", "/gunzip")),
    Probe("POST", "/drives/{own_drive}/image/{busy_drive}"),
    Probe("POST", "/drives/{drive}/image/{drive}"),
    # A's servers.
    *(
        Probe("POST", f"/servers/{{{s}}}/{command}")
        for s in ("server", "active")
        for command in ("start", "stop", "shutdown", "reset", "destroy")
    ),
    *(Probe("POST", f"/servers/{{{s}}}/set", {"name": "stolen"}) for s in ("server", "active")),
    Probe("POST", "/servers/{active}/set", {"cpu": "2000", "vnc:password": "owned"}),
    Probe("POST", "/servers/{server}/set", {"mem": "512", "ide:0:0": "{own_drive}"}),
    # References from B's own requests to A's objects.
    *(
        Probe("POST", f"/servers/create{s}", _cfg(**{key: "{drive}"}))
        for s in ("", "/stopped")
        for key in ("ide:0:0", "ide:1:1", "scsi:0:3", "block:0", "avoid:drives")
    ),
    Probe("POST", "/servers/create/stopped", _cfg(**{"block:0": "{own_drive}", "block:1": "{drive}"})),
    Probe("POST", "/servers/create/stopped", _cfg(**{"ide:0:0": "{busy_drive}"})),
    *(
        Probe("POST", f"/servers/create{s}", _cfg(**{"avoid:servers": f"{{{t}}}"}))
        for s in ("", "/stopped")
        for t in ("server", "active")
    ),
    Probe("POST", "/servers/create/stopped", _cfg(**{"avoid:servers": "{own_server} {active}"})),
    Probe("POST", "/servers/{own_server}/set", {"ide:0:0": "{drive}"}),
    Probe("POST", "/servers/{own_server}/set", {"avoid:drives": "{busy_drive}"}),
    Probe("POST", "/servers/{own_server}/set", {"avoid:servers": "{active}"}),
    # A's IP and VLAN (both in use by A's active server): changes, and references from B's servers.
    *(
        Probe("POST", f"/resources/{t}/{{{t}}}/{verb}", body)
        for t in ("ip", "vlan")
        for verb, body in (("set", b"name stolen\n"), ("destroy", None))
    ),
    *(
        Probe("POST", f"/servers/create{s}", _cfg(**{"nic:0:model": "virtio", key: f"{{{t}}}"}))
        for s in ("", "/stopped")
        for key, t in (("nic:0:dhcp", "ip"), ("vnc", "ip"), ("nic:0:vlan", "vlan"))
    ),
    Probe("POST", "/servers/{own_server}/set", {"nic:0:model": "e1000", "nic:0:dhcp": "{ip}"}),
    Probe("POST", "/servers/{own_server}/set", {"nic:0:model": "e1000", "nic:0:vlan": "{vlan}"}),
    # Markers naming A's objects are unknown markers, just like UUIDs that do not exist.
    *(
        Probe("GET", f"/{kind}/{verb}?limit=1&marker={{{obj}}}", status=400)
        for kind, obj in (
            ("drives", "drive"),
            ("servers", "server"),
            ("resources", "vlan"),
            ("resources/vlan", "vlan"),
            ("resources/ip", "ip"),
        )
        for verb in ("list", "info")
    ),
)


@dataclass
class World:
    victims: dict[str, str]  # placeholder → A's object
    stand_ins: dict[str, str]  # placeholder → a name of the same form that nothing has
    own: dict[str, str]  # placeholder → B's object


async def world(alice: Api, bob: Api) -> World:
    drive = (await alice.create_drive("1M", name="private", tags="a b", **{"user:note": "mine"}))["drive"]
    assert (await alice.call(f"/drives/{drive}/write/0", DATA)).status == 204
    busy_drive = (await alice.create_drive("1M", name="boot"))["drive"]
    ip = (await alice.call("/resources/ip/create", b"name mine\n")).props()["resource"]
    vlan = (await alice.call("/resources/vlan/create", b"name mine\n")).props()["resource"]
    server = await alice.call("/servers/create/stopped", _cfg(name="kept", persistent="true", **{"ide:0:0": drive}))
    active = await alice.call(
        "/servers/create",
        _cfg(
            name="running",
            persistent="true",
            **{
                "ide:0:0": busy_drive,
                "nic:0:model": "virtio",
                "nic:0:dhcp": ip,
                "nic:1:model": "e1000",
                "nic:1:vlan": vlan,
                "vnc": "auto",
                "vnc:password": "pw",
            },
        ),
    )
    assert server.status == 200 and active.status == 200, (server.text, active.text)
    own_drive = (await bob.create_drive("1M", name="bobs"))["drive"]
    own_server = await bob.call("/servers/create/stopped", _cfg(name="bobs", persistent="true"))
    assert own_server.status == 200
    victims = {
        "drive": drive,
        "busy_drive": busy_drive,
        "server": server.props()["server"],
        "active": active.props()["server"],
        "ip": ip,
        "vlan": vlan,
    }
    # An IP's stand-in is an address of the pool that nobody holds, as long as A's (A's is the
    # pool's first), so even Content-Length must match.
    prefix, last = ip.rsplit(".", 1)
    stand_in_ip = f"{prefix}.{'177'[-len(last) :] if last != '177'[-len(last) :] else '166'[-len(last) :]}"
    stand_ins = {k: str(uuid.uuid4()) for k in victims} | {"ip": stand_in_ip}
    return World(
        victims=victims, stand_ins=stand_ins, own={"own_drive": own_drive, "own_server": own_server.props()["server"]}
    )


def fill(text: str, names: dict[str, str]) -> str:
    for placeholder, name in names.items():
        text = text.replace("{" + placeholder + "}", name)
    return text


def fill_body(body: bytes | dict[str, Any] | None, names: dict[str, str]) -> bytes | dict[str, Any] | None:
    if isinstance(body, dict):
        return json.loads(fill(json.dumps(body), names))
    return body


def swap_back(text: str, w: World) -> str:
    for placeholder, stand_in in w.stand_ins.items():
        text = text.replace(stand_in, w.victims[placeholder])
    return text


def comparable(reply: Reply, w: World) -> tuple[int, dict[str, str], str]:
    headers = {k: swap_back(v, w) for k, v in reply.headers.items() if k.lower() != "date"}
    return reply.status, headers, swap_back(reply.text, w)


async def snapshot(alice: Api, client: Any, w: World) -> dict[str, Any]:
    """Everything A can see of A's objects, and what the hypervisor runs."""
    drives = (await alice.get("/drives/info", as_json=True)).json
    # The guest's traffic and disk counters move on their own (the test driver makes them up).
    servers = [
        {k: v for k, v in info.items() if k not in COUNTERS and not k.endswith(DISK_COUNTERS)}
        for info in (await alice.get("/servers/info", as_json=True)).json
    ]
    checksums = {
        d["drive"]: (await alice.get(f"/drives/{d['drive']}/checksum")).text
        for d in drives
        if d["drive"] != w.victims["busy_drive"]
    }
    services = client.app[SERVICES]
    resources = (await alice.get("/resources/info", as_json=True)).json
    return {
        "drives": drives,
        "servers": servers,
        "checksums": checksums,
        "resources": resources,
        "running": sorted(await services.servers.hypervisor.running()),
        "jobs": len(await services.jobs.store.unfinished_jobs()),
    }


async def test_the_isolation_matrix(alice, bob, client):
    w = await world(alice, bob)
    before = await snapshot(alice, client, w)
    assert len(before["drives"]) == 2 and len(before["servers"]) == 2 and before["running"]
    assert len(before["resources"]) == 2
    for probe in PROBES:
        answers = []
        for names in ({**w.victims, **w.own}, {**w.stand_ins, **w.own}):
            reply = await bob.call(
                fill(probe.path, names), fill_body(probe.body, names), method=probe.method, headers=probe.headers
            )
            answers.append(comparable(reply, w))
        theirs, missing = answers
        assert theirs[0] == probe.status, (probe, theirs)
        assert theirs[1]["X-Elastic-Error"] in ("missing", "usage"), probe
        assert theirs == missing, probe
    # Nothing B did shows on A's side, and nothing of B's was made from A's objects.
    assert await snapshot(alice, client, w) == before
    assert [s["server"] for s in (await bob.get("/servers/info", as_json=True)).json] == [w.own["own_server"]]
    assert (await bob.get("/drives/list")).text == w.own["own_drive"] + "\n"
    await asyncio.sleep(0)  # let any image job B could have queued show itself
    assert (await bob.get(f"/drives/{w.own['own_drive']}/info", as_json=True)).json.get("imaging") is None


async def test_lists_show_only_the_users_own(alice, bob):
    w = await world(alice, bob)
    for path in (
        "/drives/list",
        "/drives/info",
        "/servers/list",
        "/servers/info",
        "/resources/list",
        "/resources/info",
        "/resources/ip/list",
        "/resources/vlan/info",
    ):
        for as_json in (False, True):
            text = (await bob.get(path, as_json=as_json)).text
            assert not any(name in text for name in w.victims.values()), path


@pytest.mark.parametrize("accept", [False, True])
async def test_a_reader_is_not_an_owner(alice, bob, make_user, accept):
    """A drive shared with C (not B) is invisible to B; to C it is readable, never changeable."""
    carol = await make_user("carol")
    shared = (await alice.create_drive("1M", readers=carol.user))["drive"]
    assert (await alice.call(f"/drives/{shared}/write/0", DATA)).status == 204
    stand_in = str(uuid.uuid4())
    for user, paths in (
        (bob, ("info", "read/0/4k", "checksum", "set", "destroy", "write/0")),
        (carol, ("set", "destroy", "write/0", "image/" + stand_in)),
    ):
        for path in paths:
            theirs = await user.call(f"/drives/{shared}/{path}", b"name x\n", as_json=accept)
            missing = await user.call(f"/drives/{stand_in}/{path}", b"name x\n", as_json=accept)
            assert theirs.status == 404 and theirs.text.replace(shared, stand_in) == missing.text, path
    assert (await carol.get(f"/drives/{shared}/read/0/{len(DATA)}")).body == DATA
    own = (await carol.create_drive("1M"))["drive"]
    assert (await carol.call(f"/drives/{own}/image/{shared}")).status == 204  # reading is allowed


async def test_an_avoided_drive_that_is_no_longer_shared(alice, bob):
    """B's server avoids a drive A shared with B; once A stops sharing it (or destroys it), B's
    server still starts, and the answer says nothing about A's drive."""
    shared = (await alice.create_drive("1M", readers=bob.user))["drive"]
    gone = (await bob.create_drive("1M"))["drive"]
    reply = await bob.call("/servers/create/stopped", _cfg(persistent="true", **{"avoid:drives": f"{shared} {gone}"}))
    assert reply.status == 200, reply.text
    server = reply.props()["server"]
    assert (await alice.call(f"/drives/{shared}/set", {"readers": []})).status == 200
    assert (await bob.call(f"/drives/{gone}/destroy")).status == 204
    assert (await bob.call(f"/servers/{server}/start")).status == 204
    assert (await bob.get(f"/servers/{server}/info", as_json=True)).json["status"] == "active"
