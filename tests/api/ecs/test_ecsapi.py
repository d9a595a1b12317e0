"""The real client, ecsapi 0.4.0 (PyPI), against the real program: `elastic-api serve` as a
subprocess, a token made by `elastic-api user token create`, the catalogue, SSH keys and the
client's error paths."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path
from typing import Any

import pytest

# ecsapi reads $ECSAPI_ENV_FILE (default ./.env) with python-dotenv when imported: a stray file
# must not point it elsewhere.
os.environ["ECSAPI_ENV_FILE"] = "/dev/null"

import ecsapi  # noqa: E402
import pydantic  # noqa: E402
from ecsapi.errors import ClientError, NotFoundError, UnauthorizedError  # noqa: E402

from tests.api.ecs.conftest import ssh_key  # noqa: E402
from tests.support import Server, create_user, run_cli, write_config  # noqa: E402

IMAGE = "a1b2c3d4-0000-4000-8000-000000000001"


def cli_token(config: Path, *args: str) -> str:
    result = run_cli(config, "user", "token", "create", *args)
    assert result.returncode == 0, result.stderr
    word, token = result.stdout.strip().split(" ")
    assert word == "token" and len(token) >= 43
    return token


@pytest.fixture
def served(tmp_path: Path) -> Any:
    config = write_config(tmp_path)
    user, secret = create_user(config)
    image = tmp_path / "debian.raw"
    image.write_bytes(b"\0" * (1 << 20))
    added = run_cli(config, "image", "add", "--uuid", IMAGE, "--name", "Debian 12", str(image))
    assert added.returncode == 0, added.stderr
    token = cli_token(config, user)
    server = Server(config).start()
    try:
        yield config, server, user, secret, token
    finally:
        server.stop()


def client(server: Server, token: str) -> ecsapi.Api:
    port = int(server.url.rsplit(":", 1)[1])
    return ecsapi.Api(token=token, host="127.0.0.1", port=port, protocol="http")


def test_the_catalogue_through_ecsapi(served):
    _, server, _, _, token = served
    api = client(server, token)
    plans = api.fetch_plans()
    assert [p.name for p in plans] == ["ECS1", "ECS2", "ECS3", "ECS4", "ECS5", "ECS6"]
    assert (plans[0].cpu, plans[0].ram, plans[0].disk, plans[0].monthly_price) == ("1", "1024", "20", 0.0)
    assert [r.location for r in plans[0].available_regions] == ["local"]
    available = {p.name: p for p in api.fetch_plans_available()}
    assert [r.region for r in available["ECS1"].region_available] == ["local"]
    assert available["ECS1"].region_available[0].hosts[0].host == "local"
    assert [i.name for i in available["ECS1"].os_available] == ["debian-12"]
    assert api.can_create_plan("ECS1", "local")
    assert not api.can_create_plan("ECS1", "elsewhere")
    assert [(r.id, r.location, r.description) for r in api.fetch_regions()] == [(1, "local", "Local")]
    assert api.fetch_regions_available("ECS1") == ["local"]
    [image] = api.fetch_images_basics()
    assert (image.name, image.uuid, image.description, image.required_disk) == ("debian-12", IMAGE, "Debian 12", 1)
    assert image.creation_date.utcoffset() is not None
    assert api.fetch_images_cloud() == []


def test_ssh_keys_through_ecsapi(served):
    _, server, _, _, token = served
    api = client(server, token)
    assert api.fetch_ssh_keys() == []
    made = api.create_ssh_key(ssh_key(), "laptop")
    assert made.label == "laptop" and made.key == ssh_key()
    other = api.create_ssh_key(ssh_key("ssh-rsa", "x", b"\x00\x00\x00\x01\x23" + b"n" * 128), "desktop")
    assert [k.label for k in api.fetch_ssh_keys()] == ["laptop", "desktop"]
    assert api.fetch_ssh_key(made.id) == made
    api.delete_ssh_key(made.id)
    assert [k.id for k in api.fetch_ssh_keys()] == [other.id]
    # Its error paths: a duplicate label is a 409 (a ClientError), a bad key a 400, an unknown
    # key a 404 where the client looks at the status, a ValidationError where it does not.
    with pytest.raises(ClientError) as duplicate:
        api.create_ssh_key(ssh_key(), "desktop")
    assert duplicate.value.response.status_code == 409
    with pytest.raises(ClientError) as bad:
        api.create_ssh_key("ssh-rsa not-a-key", "bad")
    assert bad.value.response.status_code == 400
    with pytest.raises(NotFoundError):
        api.delete_ssh_key(made.id)
    with pytest.raises(pydantic.ValidationError):
        api.fetch_ssh_key(made.id)


def test_a_bad_token_through_ecsapi(served):
    config, server, user, _, token = served
    for wrong in ("x" * 43, "not a token"):
        with pytest.raises(UnauthorizedError):
            client(server, wrong).fetch_plans()
    # A revoked token stops at once; the others go on.
    second = cli_token(config, user)
    revoked = run_cli(config, "user", "token", "revoke", token)
    assert revoked.returncode == 0, revoked.stderr
    with pytest.raises(UnauthorizedError):
        client(server, token).fetch_regions()
    assert client(server, second).fetch_regions()


def test_the_token_command_line(served, tmp_path):
    config, server, user, secret, _ = served
    listed = run_cli(config, "user", "token", "list", user)
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 1
    assert listed.stdout.startswith("token ") and "created 20" in listed.stdout
    for args in (
        ("create", "00000000-0000-4000-8000-000000000000"),
        ("create", user, "--group", "eg100001"),
        ("create", user, "--group", "nonsense"),
        ("revoke", "no-such-token"),
        ("list", "nobody"),
    ):
        result = run_cli(config, "user", "token", *args)
        assert result.returncode == 2 and result.stderr.startswith("elastic-api: "), (args, result.stderr)
        assert "Traceback" not in result.stderr
    # A group made over the API can confine a token.
    login = json.dumps({"username": user, "password": secret}).encode()
    with urllib.request.urlopen(urllib.request.Request(server.url + "/ecs/v2/login", data=login)) as reply:
        session = json.loads(reply.read())["token"]
    request = urllib.request.Request(
        server.url + "/ecs/v2/groups",
        method="POST",
        data=json.dumps({"notes": "web", "password": "pw"}).encode(),
        headers={"Authorization": f"Bearer {session}"},
    )
    with urllib.request.urlopen(request) as reply:
        group = json.loads(reply.read())["group"]["name"]
    confined = cli_token(config, user, "--group", group)
    listed = run_cli(config, "user", "token", "list", user)
    assert f"group {group}" in listed.stdout and len(listed.stdout.splitlines()) == 2
    assert client(server, confined).fetch_regions()
