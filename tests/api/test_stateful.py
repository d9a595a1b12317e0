"""Two users against the real app (SQLite store, drive pool, a per-example test:/// libvirt host),
driven by Hypothesis: every answer matches a small model, nothing ever answers 5xx, and libvirt
runs exactly the servers the store and the model hold active."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from elastic_api.app import SERVICES
from elastic_api.config import Config, HostConfig
from tests.conftest import Api, Reply, make_app, started_client
from tests.support import libvirt_test_host

KiB, MiB = 1024, 1 << 20
SIZES = {"4k": 4 * KiB, "64k": 64 * KiB, "1M": MiB, "0": None, "-1": None, "12Q": None, "": None, "99999999T": None}
# Valid values are listed several times over, so that objects live long enough to matter.
NAMES = st.sampled_from(["disk", "two words", " padded ", "ünï"] * 3 + ["", "   ", "x" * 257])
SIZE_TEXTS = st.sampled_from(["4k", "64k", "1M"] * 3 + [s for s, n in SIZES.items() if n is None])
MEMS = st.sampled_from(["64", "128"] * 3 + ["8", "lots"])
USERS = st.integers(0, 1)
PICK = st.integers(0, 63)
OWN = 40


@dataclass
class DriveModel:
    owner: int
    name: str
    data: bytearray


@dataclass
class ServerModel:
    owner: int
    name: str
    mem: int
    persistent: bool
    drives: tuple[str, ...]
    active: bool = False


@dataclass
class Model:
    drives: dict[str, DriveModel] = field(default_factory=dict)  # in creation order
    servers: dict[str, ServerModel] = field(default_factory=dict)
    gone: list[str] = field(default_factory=list)

    def claimed(self, drive: str) -> list[str]:
        return sorted(s for s, m in self.servers.items() if m.active and drive in m.drives)


def valid_name(name: str) -> bool:
    return 0 < len(name.strip()) <= 256


class TwoUsers(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="elastic-stateful-"))
        self.loop = asyncio.new_event_loop()
        self.model = Model()
        self.run(self._open())

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    async def _open(self) -> None:
        host = libvirt_test_host(self.tmp / "host.xml", memory_mb=64 * 1024, cpus=8)
        config = Config(
            data_dir=self.tmp / "var", hosts=(HostConfig("test", f"test://{host}"),), default_cipher="none"
        )  # the model is about ownership and state, not keys
        self.client = await started_client(make_app(config))
        self.services = self.client.app[SERVICES]
        self.users = [Api(self.client, *await self.services.users.create(n)) for n in ("a", "b")]

    def teardown(self) -> None:
        self.run(self.client.close())
        self.loop.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- talking to the API ---------------------------------------------------------------------
    def call(self, user: int, path: str, body: Any = None, **kw: Any) -> Reply:
        reply: Reply = self.run(self.users[user].call(path, body, **kw))
        # 507 is the protocol's answer to a write past a drive's end; no other 5xx is a client's doing.
        assert reply.status < 500 or (reply.status, reply.error) == (507, "full"), (path, reply.status, reply.text)
        if reply.status >= 400:
            assert reply.error and reply.text.count("\n") == 1 and "Traceback" not in reply.text, reply.text
        return reply

    def expect(self, reply: Reply, status: int) -> None:
        assert reply.status == status, (reply.status, status, reply.text)

    # A pick below OWN names one of the user's own objects (when there is one), so that long
    # lives (claimed drives, stopped servers) happen often; the rest name anyone's, destroyed
    # ones, or a UUID nothing has.
    def drive_pick(self, user: int, pick: int) -> str:
        own = [d for d, m in self.model.drives.items() if m.owner == user]
        if pick < OWN and own:
            return own[pick % len(own)]
        candidates = [*self.model.drives, *self.model.gone, str(uuid.uuid5(uuid.NAMESPACE_OID, str(pick)))]
        return candidates[pick % len(candidates)]

    def server_pick(self, user: int, pick: int) -> str:
        own = [s for s, m in self.model.servers.items() if m.owner == user]
        if pick < OWN and own:
            return own[pick % len(own)]
        candidates = [*self.model.servers, *self.model.gone, str(uuid.uuid5(uuid.NAMESPACE_URL, str(pick)))]
        return candidates[pick % len(candidates)]

    def owns_drive(self, user: int, drive: str) -> bool:
        return drive in self.model.drives and self.model.drives[drive].owner == user

    def owns_server(self, user: int, server: str) -> bool:
        return server in self.model.servers and self.model.servers[server].owner == user

    # -- drives ---------------------------------------------------------------------------------
    @initialize()
    def a_drive_each(self) -> None:
        for user in (0, 1):
            self.create_drive(user, "first", "1M")

    @rule(user=USERS, name=NAMES, size=SIZE_TEXTS)
    def create_drive(self, user: int, name: str, size: str) -> None:
        reply = self.call(user, "/drives/create", {"name": name, "size": size}, as_json=True)
        if not valid_name(name) or SIZES[size] is None:
            return self.expect(reply, 400)
        self.expect(reply, 200)
        self.model.drives[reply.json["drive"]] = DriveModel(user, name.strip(), bytearray(SIZES[size] or 0))

    @rule(user=USERS, pick=PICK, name=NAMES, grow=st.sampled_from([None, 0, 4 * KiB, -4 * KiB]))
    def set_drive(self, user: int, pick: int, name: str, grow: int | None) -> None:
        drive = self.drive_pick(user, pick)
        body = {"name": name}
        model = self.model.drives.get(drive)
        if grow is not None:
            body["size"] = str(max(1, len(model.data) + grow) if model else 8 * KiB)
        reply = self.call(user, f"/drives/{drive}/set", body)
        if not valid_name(name):
            return self.expect(reply, 400)
        if not self.owns_drive(user, drive):
            return self.expect(reply, 404)
        assert model is not None
        if grow is not None and grow < 0:
            return self.expect(reply, 400)
        self.expect(reply, 200)
        model.name = name.strip()
        if grow:
            model.data.extend(bytes(grow))

    @rule(user=USERS, pick=PICK)
    def destroy_drive(self, user: int, pick: int) -> None:
        drive = self.drive_pick(user, pick)
        reply = self.call(user, f"/drives/{drive}/destroy")
        if not self.owns_drive(user, drive):
            return self.expect(reply, 404)
        if self.model.claimed(drive):
            return self.expect(reply, 409)
        self.expect(reply, 204)
        del self.model.drives[drive]
        self.model.gone.append(drive)

    @rule(
        user=USERS,
        pick=PICK,
        offset=st.sampled_from([0, 512, 4095, 60 * KiB, MiB - 1]),
        length=st.sampled_from([1, 100, 5000]),
        byte=st.integers(1, 255),
    )
    def write_drive(self, user: int, pick: int, offset: int, length: int, byte: int) -> None:
        drive = self.drive_pick(user, pick)
        reply = self.call(user, f"/drives/{drive}/write/{offset}", bytes([byte]) * length)
        if not self.owns_drive(user, drive):
            return self.expect(reply, 404)
        if self.model.claimed(drive):
            return self.expect(reply, 409)
        data = self.model.drives[drive].data
        if offset + length > len(data):
            return self.expect(reply, 507)
        self.expect(reply, 204)
        data[offset : offset + length] = bytes([byte]) * length

    @rule(
        user=USERS,
        pick=PICK,
        offset=st.sampled_from([0, 4000, 64 * KiB, MiB]),
        size=st.sampled_from(["1", "4k", "100000", "0", "x"]),
    )
    def read_drive(self, user: int, pick: int, offset: int, size: str) -> None:
        drive = self.drive_pick(user, pick)
        reply = self.call(user, f"/drives/{drive}/read/{offset}/{size}", method="GET")
        if not self.owns_drive(user, drive):
            return self.expect(reply, 404)
        data = self.model.drives[drive].data
        if size == "x" or offset >= len(data) or size == "0":
            return self.expect(reply, 400)
        self.expect(reply, 200)
        length = {"1": 1, "4k": 4 * KiB, "100000": 100000}[size]
        assert reply.body == bytes(data[offset : offset + length])

    # -- servers --------------------------------------------------------------------------------
    @rule(
        user=USERS,
        picks=st.lists(PICK, min_size=1, max_size=2),
        start=st.sampled_from([True, True, False]),
        persistent=st.booleans(),
        mem=MEMS,
    )
    def create_server(self, user: int, picks: list[int], start: bool, persistent: bool, mem: str) -> None:
        drives = tuple(self.drive_pick(user, p) for p in picks)
        body = {
            "name": "s",
            "cpu": "1000",
            "mem": mem,
            "persistent": str(persistent).lower(),
            **{f"ide:0:{i}": d for i, d in enumerate(drives)},
        }
        reply = self.call(user, "/servers/create" + ("" if start else "/stopped"), body, as_json=True)
        if not mem.isdigit() or int(mem) < 16 or len(set(drives)) < len(drives):
            return self.expect(reply, 400)
        if not all(self.owns_drive(user, d) for d in drives):
            return self.expect(reply, 404)
        if start and any(self.model.claimed(d) for d in drives):
            return self.expect(reply, 409)
        self.expect(reply, 200)
        self.model.servers[reply.json["server"]] = ServerModel(user, "s", int(mem), persistent, drives, start)

    @rule(user=USERS, pick=PICK)
    def start_server(self, user: int, pick: int) -> None:
        server = self.server_pick(user, pick)
        reply = self.call(user, f"/servers/{server}/start")
        if not self.owns_server(user, server):
            return self.expect(reply, 404)
        model = self.model.servers[server]
        if model.active:
            return self.expect(reply, 409)
        if not all(d in self.model.drives for d in model.drives):
            return self.expect(reply, 404)  # a drive it names was destroyed meanwhile
        if any(self.model.claimed(d) for d in model.drives):
            return self.expect(reply, 409)
        self.expect(reply, 204)
        model.active = True

    @rule(user=USERS, pick=PICK)
    def stop_server(self, user: int, pick: int) -> None:
        server = self.server_pick(user, pick)
        reply = self.call(user, f"/servers/{server}/stop")
        if not self.owns_server(user, server):
            return self.expect(reply, 404)
        model = self.model.servers[server]
        if not model.active:
            return self.expect(reply, 409)
        self.expect(reply, 204)
        model.active = False
        if not model.persistent:
            del self.model.servers[server]
            self.model.gone.append(server)

    @rule(user=USERS, pick=PICK)
    def destroy_server(self, user: int, pick: int) -> None:
        server = self.server_pick(user, pick)
        reply = self.call(user, f"/servers/{server}/destroy")
        if not self.owns_server(user, server):
            return self.expect(reply, 404)
        self.expect(reply, 204)
        del self.model.servers[server]
        self.model.gone.append(server)

    @precondition(lambda self: bool(self.model.servers))
    @rule(user=USERS, pick=PICK, name=NAMES)
    def set_server(self, user: int, pick: int, name: str) -> None:
        server = self.server_pick(user, pick)
        reply = self.call(user, f"/servers/{server}/set", {"name": name})
        if not self.owns_server(user, server):
            return self.expect(reply, 404)
        model = self.model.servers[server]
        if not valid_name(name):
            return self.expect(reply, 400)
        if not model.active and not all(d in self.model.drives for d in model.drives):
            return self.expect(reply, 404)  # a stopped server's references are checked again
        self.expect(reply, 200)
        model.name = name.strip()

    # -- what must always hold -----------------------------------------------------------------
    @invariant()
    def users_see_what_the_model_holds(self) -> None:
        for user in (0, 1):
            drives = self.call(user, "/drives/info", method="GET", as_json=True).json
            expected = [
                {"drive": d, "name": m.name, "size": len(m.data), "claimed": self.model.claimed(d)}
                for d, m in self.model.drives.items()
                if m.owner == user
            ]
            assert [
                {k: d[k] for k in ("drive", "name", "size")} | {"claimed": sorted(d["claimed"])} for d in drives
            ] == expected
            servers = self.call(user, "/servers/info", method="GET", as_json=True).json
            expected_servers = [
                {"server": s, "name": m.name, "mem": m.mem, "status": "active" if m.active else "stopped"}
                for s, m in self.model.servers.items()
                if m.owner == user
            ]
            assert [{k: s[k] for k in ("server", "name", "mem", "status")} for s in servers] == expected_servers

    @invariant()
    def libvirt_agrees_with_the_store(self) -> None:
        running = set(self.run(self.services.servers.hypervisor.running()))
        stored = {r.server for r in self.run(self.services.servers.store.active_servers())}
        assert running == stored == {s for s, m in self.model.servers.items() if m.active}


TwoUsers.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=50,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestTwoUsers = TwoUsers.TestCase
