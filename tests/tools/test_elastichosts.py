"""`elastichosts`: arguments become the path, -c/-f bodies, -j JSON, -v headers, errors on stderr."""

from __future__ import annotations

import json

from tests.tools.conftest import tool


async def test_text_create_info_list_destroy(account):
    env = account.env()
    created = await tool("elastichosts", "-c", "drives", "create", env=env, stdin=b"name from-tool\nsize 2M\n")
    assert created.returncode == 0 and created.stderr == ""
    info = account.info_from(created.stdout.encode())
    assert info["name"] == "from-tool" and info["size"] == str(2 << 20)
    drive = info["drive"]
    listed = await tool("elastichosts", "drives", "list", env=env)
    assert drive in listed.stdout.split()
    # Words may carry their own slashes; EHURI works without its trailing slash too.
    one = await tool("elastichosts", f"drives/{drive}", "info", env=account.env(url=account.url))
    assert one.returncode == 0 and f"drive {drive}" in one.stdout
    gone = await tool("elastichosts", "drives", drive, "destroy", env=env)
    assert gone.returncode == 0 and gone.stdout == ""


async def test_json_in_and_out(account, tmp_path):
    env = account.env()
    body = tmp_path / "create.json"
    body.write_text(json.dumps({"name": "json-tool", "size": "1M", "tags": ["a", "b"]}))
    created = await tool("elastichosts", "-j", "-f", body, "drives", "create", env=env)
    assert created.returncode == 0, created.stderr
    info = json.loads(created.stdout)
    assert info["name"] == "json-tool" and info["size"] == 1 << 20 and info["tags"] == ["a", "b"]
    listed = json.loads((await tool("elastichosts", "-j", "drives", "list", env=env)).stdout)
    assert {"drive": info["drive"]} in listed
    renamed = await tool(
        "elastichosts", "-j", "-c", "drives", info["drive"], "set", env=env, stdin=b'{"name": "renamed"}'
    )
    assert json.loads(renamed.stdout)["name"] == "renamed"


async def test_verbose_shows_headers_but_not_the_secret(account):
    done = await tool("elastichosts", "-v", "-j", "drives", "list", env=account.env())
    assert done.returncode == 0
    assert "> POST /drives/list HTTP/1.1" in done.stderr and "> Accept: application/json" in done.stderr
    assert "< HTTP/1.1 200 OK" in done.stderr and "< X-Elastic-Output: list" in done.stderr
    assert "> Authorization: Basic <hidden>" in done.stderr and account.secret not in done.stderr
    json.loads(done.stdout)


async def test_bad_auth_is_an_error_on_stderr(account):
    env = {**account.env(), "EHAUTH": f"{account.user}:wrong-secret"}
    done = await tool("elastichosts", "drives", "list", env=env)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("elastichosts: 401 auth") and done.stderr.count("\n") == 1


async def test_api_errors_carry_the_server_line(account):
    env = account.env()
    missing = await tool("elastichosts", "drives", "00000000-0000-0000-0000-000000000000", "info", env=env)
    assert missing.returncode == 1 and "404 missing: no such drive" in missing.stderr
    usage = await tool("elastichosts", "-c", "drives", "create", env=env, stdin=b"name x\nsize 1M\ncolour red\n")
    assert usage.returncode == 1 and "400 usage" in usage.stderr and "colour" in usage.stderr


async def test_missing_environment_and_unreachable_server(account, tmp_path):
    env = account.env()
    for key in ("EHURI", "EHAUTH"):
        done = await tool("elastichosts", "drives", "list", env={k: v for k, v in env.items() if k != key})
        assert done.returncode == 2 and f"{key} is not set" in done.stderr
    unreadable = await tool("elastichosts", "-f", tmp_path / "nope", "drives", "create", env=env)
    assert unreadable.returncode == 2 and "cannot read" in unreadable.stderr
    down = await tool("elastichosts", "drives", "list", env=account.env(url="http://127.0.0.1:9"))
    assert down.returncode == 1 and "cannot reach http://127.0.0.1:9: Connection refused" in down.stderr
