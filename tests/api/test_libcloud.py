"""Apache Libcloud's ElasticHosts driver (libcloud 3.7.0, the last to ship it) against the real server."""

from __future__ import annotations

import os

import pytest

from tests.support import Server, create_user, run_cli, write_config

libcloud = pytest.importorskip("libcloud.compute.drivers.elastichosts")
DEBIAN = "980cf63c-f21e-4382-997b-6541d5809629"  # a standard image UUID Libcloud knows


@pytest.fixture
def server(tmp_path):
    config = write_config(tmp_path)
    raw = tmp_path / "debian.raw"
    raw.write_bytes(os.urandom(64 * 1024) + bytes(1 << 20))
    added = run_cli(config, "image", "add", "--uuid", DEBIAN, "--name", "Debian Linux 5.0", str(raw))
    assert added.returncode == 0, added.stderr
    running = Server(config).start()
    yield running, create_user(config)
    running.stop()


def test_create_list_reboot_destroy_node(server):
    running, (user, secret) = server
    host, port = running.url.removeprefix("http://").split(":")
    driver = libcloud.ElasticHostsNodeDriver(user, secret, secure=False, host=host, port=int(port))
    image = next(i for i in driver.list_images() if i.id == DEBIAN)
    size = next(s for s in driver.list_sizes() if s.id == "small")

    node = driver.create_node(name="libcloud node", size=size, image=image, vnc_password="pw")
    from libcloud.compute.types import NodeState

    assert node.name == "libcloud node" and node.state == NodeState.RUNNING
    assert node.extra["cpu"] == 2000 and node.extra["mem"] == 1700
    assert [n.id for n in driver.list_nodes()] == [node.id]
    assert driver.reboot_node(node)
    assert driver.ex_set_node_configuration(node, name="renamed")
    assert driver.list_nodes()[0].name == "renamed"
    assert driver.destroy_node(node)
    assert driver.list_nodes() == []


def test_wrong_secret_is_an_auth_error(server):
    running, (user, _) = server
    host, port = running.url.removeprefix("http://").split(":")
    driver = libcloud.ElasticHostsNodeDriver(user, "wrong", secure=False, host=host, port=int(port))
    from libcloud.common.types import InvalidCredsError

    with pytest.raises(InvalidCredsError):
        driver.list_nodes()
