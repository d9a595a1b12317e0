"""The script library's service on a real store: CRUD per user, and `resolve`, which a server's
create uses to turn a script id and env lines into the seed's script and environment."""

from __future__ import annotations

import dataclasses

import pytest

from elastic_api.errors import Invalid, NotFound, QuotaExceeded
from elastic_api.service.scripts import ScriptService

ALICE, BOB = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"


@pytest.fixture
async def scripts(store, config):
    for user in (ALICE, BOB):
        await store.create_user(user, "u", b"h", 0)
    return ScriptService(dataclasses.replace(config, max_scripts_per_user=3, max_script_content=64), store)


async def test_made_listed_changed_and_deleted(scripts):
    made = await scripts.create(ALICE, " setup ", "#!/bin/sh\necho hi\n", False)
    assert (made.owner, made.title, made.windows) == (ALICE, "setup", False)
    assert await scripts.list(ALICE) == [made] and await scripts.list(BOB) == []
    assert await scripts.get(ALICE, made.id) == made
    with pytest.raises(NotFound):
        await scripts.get(BOB, made.id)  # another user's: as unknown
    same = await scripts.update(ALICE, made.id, None, None, None)
    assert same == made
    changed = await scripts.update(ALICE, made.id, "renamed", None, None)
    assert (changed.title, changed.content) == ("renamed", made.content)
    with pytest.raises(NotFound):
        await scripts.update(BOB, made.id, "theirs", None, None)
    with pytest.raises(NotFound):
        await scripts.delete(BOB, made.id)
    await scripts.delete(ALICE, made.id)
    with pytest.raises(NotFound):
        await scripts.delete(ALICE, made.id)


async def test_changes_are_checked_as_they_will_be(scripts):
    win = await scripts.create(ALICE, "w", "#ps1\nWrite-Host hi", True)
    ps_first_line = await scripts.create(ALICE, "r", "#!relative\n", True)  # fine on Windows
    with pytest.raises(Invalid, match="relative path"):
        await scripts.update(ALICE, ps_first_line.id, None, None, False)  # made Linux: now checked
    with pytest.raises(Invalid, match="larger than 64 bytes"):
        await scripts.update(ALICE, win.id, None, "x" * 65, None)
    with pytest.raises(Invalid, match="title"):
        await scripts.update(ALICE, win.id, "", None, None)
    assert await scripts.get(ALICE, win.id) == win  # nothing changed by a refusal


async def test_a_limit_per_user(scripts):
    for i in range(3):
        await scripts.create(ALICE, f"s{i}", "echo", False)
    with pytest.raises(QuotaExceeded):
        await scripts.create(ALICE, "one more", "echo", False)
    await scripts.create(BOB, "bob's", "echo", False)


async def test_resolve(scripts):
    linux = await scripts.create(ALICE, "l", "#!/bin/sh\necho $GREETING\n", False)
    assert await scripts.resolve(ALICE, linux.id, None, windows_image=False) == (linux.content, ())
    assert await scripts.resolve(ALICE, linux.id, "GREETING=hello\nB=2", windows_image=False) == (
        linux.content,
        (("GREETING", "hello"), ("B", "2")),
    )
    with pytest.raises(Invalid, match="Invalid env variable format.*user_customize_env"):
        await scripts.resolve(ALICE, linux.id, "not an assignment", windows_image=False)
    # Unknown, and another user's, name the field: a create's bad input is a 400, not a 404.
    with pytest.raises(Invalid, match="user_customize"):
        await scripts.resolve(BOB, linux.id, None, windows_image=False)
    with pytest.raises(Invalid, match="user_customize"):
        await scripts.resolve(ALICE, linux.id + 1000, None, windows_image=False)


async def test_resolve_refuses_windows_and_powershell_on_linux(scripts):
    win = await scripts.create(ALICE, "w", "echo hi", True)
    with pytest.raises(Invalid, match="powershell script cannot be used in linux servers.*user_customize"):
        await scripts.resolve(ALICE, win.id, None, windows_image=False)
    assert await scripts.resolve(ALICE, win.id, None, windows_image=True) == ("echo hi", ())
    ps = await scripts.create(ALICE, "p", "Write-Host hi", False)  # marked Linux, written in PowerShell
    with pytest.raises(Invalid, match="powershell script cannot be used in linux servers"):
        await scripts.resolve(ALICE, ps.id, None, windows_image=False)
