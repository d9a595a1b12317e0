"""Cloud scripts through the real client, ecsapi 0.4.0, against the real program (the calls of
ECS.md §3 "Observed ecsapi requests"), with its error paths."""

from __future__ import annotations

import pytest
from ecsapi.errors import ClientError, NotFoundError

from tests.api.ecs.test_ecsapi import cli_token, client, served  # noqa: F401  (served is a fixture)
from tests.support import create_user


def test_scripts_through_ecsapi(served):  # noqa: F811
    config, server, _, _, token = served
    api = client(server, token)
    assert api.fetch_scripts() == []
    made = api.create_script("hello", "#!/bin/sh\necho hello\n")
    assert made.status == "ok"
    script = made.script
    assert (script.title, script.content, script.windows, script.public, script.category) == (
        "hello",
        "#!/bin/sh\necho hello\n",
        False,
        False,
        None,
    )
    assert script.user  # the owner's UUID, present as ecsapi requires
    windows = api.create_script("win", "#ps1\nWrite-Host hi", windows=True).script
    assert windows.windows is True
    assert [s.id for s in api.fetch_scripts()] == [script.id, windows.id]
    assert api.fetch_script(script.id) == script
    # PATCH sends every field, nulls for what stays.
    renamed = api.update_script(script.id, "renamed", None, None)
    assert (renamed.title, renamed.content, renamed.windows) == ("renamed", script.content, False)
    rewritten = api.update_script(script.id, None, "echo again", None)
    assert (rewritten.title, rewritten.content) == ("renamed", "echo again")
    assert api.delete_script(script.id) is None
    with pytest.raises(NotFoundError):
        api.fetch_script(script.id)
    with pytest.raises(NotFoundError):
        api.delete_script(script.id)
    assert [s.id for s in api.fetch_scripts()] == [windows.id]

    # Another user sees none of them, and theirs is unknown to the first.
    other, _ = create_user(config)
    theirs = client(server, cli_token(config, other))
    assert theirs.fetch_scripts() == []
    with pytest.raises(NotFoundError):
        theirs.fetch_script(windows.id)
    with pytest.raises(NotFoundError):
        theirs.update_script(windows.id, "mine", None, None)
    with pytest.raises(NotFoundError):
        theirs.delete_script(windows.id)
    assert api.fetch_script(windows.id) == windows


def test_bad_scripts_through_ecsapi(served):  # noqa: F811
    _, server, _, _, token = served
    api = client(server, token)
    for title, content in (("t", "#!bash\necho"), ("t", "x" * (32 * 1024 + 1)), ("t" * 300, "echo")):
        with pytest.raises(ClientError) as refused:
            api.create_script(title, content)
        assert refused.value.response.status_code == 400
    assert "Cannot use relative path in user script" in _message(api, "t", "#!./run\n")
    assert api.fetch_scripts() == []


def _message(api, title: str, content: str) -> str:
    with pytest.raises(ClientError) as refused:
        api.create_script(title, content)
    return str(refused.value.response.json()["message"])
