"""Cloud scripts' pure checks: titles, content, interpreters, PowerShell, env lines."""

from __future__ import annotations

import pytest

from elastic_api.errors import Invalid
from elastic_api.model.cloudscript import (
    BAD_ENV,
    POWERSHELL_ON_LINUX,
    RELATIVE_PATH,
    check_for_image,
    looks_like_powershell,
    parse_content,
    parse_env,
    parse_title,
)


def test_titles():
    assert parse_title("  backup  ", 10) == "backup"
    for bad in ("", "   ", "x" * 11, "two\nlines", "bell\x07"):
        with pytest.raises(Invalid, match="title"):
            parse_title(bad, 10)


def test_content_size_counts_bytes():
    assert parse_content("echo é", 7, windows=False) == "echo é"
    with pytest.raises(Invalid, match="larger than 6 bytes"):
        parse_content("echo é", 6, windows=False)  # 6 characters, 7 bytes
    with pytest.raises(Invalid, match="empty"):
        parse_content(" \n", 100, windows=False)


@pytest.mark.parametrize(
    "content",
    [
        "echo no shebang",
        "#!/bin/sh\necho hi",
        "#! /bin/bash -e\n",
        "#!/usr/bin/env python3\nprint(1)",
        "#!/usr/bin/env -S python3 -u\n",
        "\ufeff#!/bin/sh\n",
        "#!/bin/sh\r\necho crlf",
    ],
)
def test_absolute_interpreters_pass(content):
    assert parse_content(content, 1000, windows=False) == content
    check_for_image(content, False, False, "user_customize")


@pytest.mark.parametrize("content", ["#!bash\necho", "#!./run.sh\n", "#!\necho", "#!/usr/bin/env ./tool\n", "#! sh"])
def test_relative_interpreters_are_refused(content):
    with pytest.raises(Invalid, match=RELATIVE_PATH):
        parse_content(content, 1000, windows=False)
    with pytest.raises(Invalid, match=f"{RELATIVE_PATH}.*user_customize"):
        check_for_image(content, False, False, "user_customize")
    # A Windows script has no #! line to check.
    assert parse_content(content, 1000, windows=True) == content


@pytest.mark.parametrize(
    "content",
    [
        "#ps1_sysnative\nWrite-Output hi",
        "#ps1\n",
        "<powershell>\nmkdir C:\\x\n</powershell>",
        "#!/usr/bin/pwsh\necho",
        "echo start\nSet-ExecutionPolicy Unrestricted\n",
        "  Write-Host 'hello'",
        "$env:FOO = 'x'",
    ],
)
def test_powershell_is_refused_on_linux(content):
    assert looks_like_powershell(content)
    with pytest.raises(Invalid, match=f"{POWERSHELL_ON_LINUX}.*user_customize"):
        check_for_image(content, False, False, "user_customize")
    check_for_image(content, False, True, "user_customize")  # a Windows image takes it


@pytest.mark.parametrize("content", ["#!/bin/sh\necho Write-Host", "write-host x", "export env=1\necho $env"])
def test_shell_is_not_powershell(content):
    assert not looks_like_powershell(content)


def test_a_windows_script_is_refused_on_linux():
    with pytest.raises(Invalid, match=f"{POWERSHELL_ON_LINUX}.*windows script"):
        check_for_image("echo hi", True, False, "user_customize 3")
    check_for_image("echo hi", True, True, "user_customize 3")


def test_env_lines():
    assert parse_env("", 100) == ()
    assert parse_env("A=1\n\n# a comment\n_b2=x=y\r\nEMPTY=\nSPACED= a b \n", 100) == (
        ("A", "1"),
        ("_b2", "x=y"),
        ("EMPTY", ""),
        ("SPACED", " a b "),
    )
    assert parse_env('Q="quoted"', 100) == (("Q", '"quoted"'),)  # verbatim: the seed quotes


@pytest.mark.parametrize(
    "text", ["A", "=1", "1A=2", "A-B=1", "A B=1", " A=1", "A=1\nA=2", "A=bell\x07", "export A=1", "A=" + "x" * 200]
)
def test_bad_env_lines_are_refused(text):
    with pytest.raises(Invalid, match=f"{BAD_ENV}.*user_customize_env"):
        parse_env(text, 100)
