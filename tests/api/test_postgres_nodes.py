"""Two real `elastic-api serve` processes on one PostgreSQL database and one pool: creates spread
over both nodes at once are all there, a quota holds exactly across them, an exclusive drive is
claimed once, and a second node under a live node's name is refused."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.postgres import fresh_database_sync
from tests.support import Server, as_json, create_user, request, run_cli, write_config


def node_configs(tmp_path: Path, url: str, names: tuple[str, ...] = ("a", "b"), **extra: Any) -> list[Path]:
    """One config per node: the same database and the same data directory (the pool every node
    mounts at the same path, the master key, the installation ID), each its own node_name."""
    configs = []
    for name in names:
        (tmp_path / name).mkdir()
        configs.append(
            write_config(tmp_path / name, database_url=url, data_dir=str(tmp_path / "shared"), node_name=name, **extra)
        )
    return configs


def test_two_nodes_share_the_drives_and_a_quota_exactly(tmp_path):
    with fresh_database_sync() as url:
        configs = node_configs(tmp_path, url)
        user, secret = create_user(configs[0])
        assert run_cli(configs[1], "user", "set-quota", user, "drives=20").returncode == 0
        nodes = [Server(configs[0]).start()]
        nodes.append(Server(configs[1]).start())  # after the first made the master key
        try:

            def create(n: int) -> int:
                return request(nodes[n % 2].url + "/drives/create", user, secret, f"name d{n}\nsize 1M\n".encode())[0]

            def listed(node: Server) -> list[str]:
                status, _, body = request(node.url + "/drives/list", user, secret, method="GET")
                assert status == 200
                return body.decode().split()

            with ThreadPoolExecutor(16) as pool:
                statuses = list(pool.map(create, range(50)))
            assert sorted(set(statuses)) == [200, 402] and statuses.count(200) == 20, statuses
            assert len(listed(nodes[0])) == len(listed(nodes[1])) == 20

            assert run_cli(configs[0], "user", "set-quota", user, "drives=unlimited").returncode == 0
            with ThreadPoolExecutor(16) as pool:
                statuses = list(pool.map(create, range(50, 100)))
            assert statuses == [200] * 50
            assert sorted(listed(nodes[0])) == sorted(listed(nodes[1])) and len(listed(nodes[1])) == 70
        finally:
            for node in nodes:
                assert node.stop() == 0


def test_an_exclusive_drive_is_never_claimed_by_servers_on_two_nodes(tmp_path):
    with fresh_database_sync() as url:
        configs = node_configs(tmp_path, url)
        user, secret = create_user(configs[0])
        nodes = [Server(configs[0]).start()]
        nodes.append(Server(configs[1]).start())
        try:

            def call(n: int, path: str, body: bytes | None = None) -> tuple[int, bytes]:
                status, _, reply = request(
                    nodes[n % 2].url + path, user, secret, body, headers={"Accept": "application/json"}
                )
                return status, reply

            for round_ in range(3):
                status, reply = call(0, "/drives/create", b"name x\nsize 1M\nclaim:type exclusive\n")
                assert status == 200, reply
                drive = as_json(reply)["drive"]
                servers = []
                for n in range(4):
                    status, reply = call(
                        n, "/servers/create/stopped", f"name s{n}\ncpu 500\nmem 64\nide:0:0 {drive}\n".encode()
                    )
                    assert status == 200, reply
                    servers.append(as_json(reply)["server"])
                with ThreadPoolExecutor(4) as pool:
                    started = list(pool.map(lambda n: call(n, f"/servers/{servers[n]}/start")[0], range(4)))
                assert sorted(started) == [204, 409, 409, 409], started
                status, reply = call(1, f"/drives/{drive}/info")
                winner = servers[started.index(204)]
                assert as_json(reply)["claimed"] == [winner]
                assert call(started.index(204), f"/servers/{winner}/stop")[0] == 204
        finally:
            for node in nodes:
                assert node.stop() == 0


def test_a_second_node_under_a_live_nodes_name_is_refused_and_a_restart_is_not(tmp_path):
    with fresh_database_sync() as url:
        a, twin = node_configs(tmp_path, url, ("a", "twin"))
        twin.write_text(twin.read_text().replace("node_name: twin", "node_name: a"))
        node = Server(a).start()
        try:
            refused = Server(twin)
            try:
                refused.start()
                raise AssertionError("a second node named a started")
            except RuntimeError as e:
                assert "a node named" in str(e) and "/a is running on this database already" in str(e), e
            assert refused.process is not None and refused.process.wait(60) == 2
        finally:
            assert node.stop() == 0
        again = Server(twin).start()  # the name is free once its node is gone
        assert again.stop() == 0
