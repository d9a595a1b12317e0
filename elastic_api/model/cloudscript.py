"""Cloud scripts (ECS.md §3, §4 CloudScript): a user's library of scripts a server's create may
name by id (`user_customize`), with `NAME=value` lines for its environment (`user_customize_env`).
Pure checks; the messages are Seeweb's own (ECS.md §6) where it has one.

What the checks mean here (Seeweb documents the messages, not the rules):
- "Cannot use relative path in user script": a Linux script's `#!` line must name its
  interpreter by an absolute path (`#!/bin/sh`, `#!/usr/bin/env python3`). `#!bash`, `#!./run`
  or a bare `#!` would be looked up relative to whatever directory cloud-init runs it from, which
  is not defined, so the script would fail (or run something else) on the guest. `#!/usr/bin/env`
  followed by a relative path (`#!/usr/bin/env ./x`) is the same mistake. A script without a
  `#!` line is run by /bin/sh. Windows scripts are not checked (no `#!` on Windows).
- "powershell script cannot be used in linux servers": a script marked `windows`, or whose
  content is PowerShell by its own markers (`#ps1`, `#ps1_sysnative` or `<powershell>` on its
  first line, as cloudbase-init and EC2 read them; a `#!` naming pwsh or powershell; or a line
  that starts with a PowerShell cmdlet such as `Write-Host`), named for a server whose image is
  not a Windows one.
- "Invalid env variable format": `user_customize_env` is lines of `NAME=value`; NAME a shell
  identifier (a letter or `_`, then letters, digits, `_`); the value is everything after the first
  `=`, verbatim (no quotes are removed: the seed quotes it for the shell); blank lines and lines
  starting with `#` are skipped; a NAME given twice is an error (which one was meant?).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from elastic_api.errors import Invalid

RELATIVE_PATH = "Cannot use relative path in user script"
POWERSHELL_ON_LINUX = "powershell script cannot be used in linux servers"
BAD_ENV = "Invalid env variable format"

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# cloudbase-init's and EC2's first-line markers of a PowerShell user-data script.
_PS_MARKERS = ("#ps1", "#ps1_sysnative", "<powershell>")
# A line that starts with a cmdlet of PowerShell's common verbs (Verb-Noun), or sets $env:X.
_CMDLET = re.compile(
    r"^\s*(?:(?:Add|Clear|Disable|Enable|Get|Import|Install|Invoke|New|Remove|Rename|Restart|Set|Start|Stop"
    r"|Test|Write)-[A-Z][A-Za-z]+\b|\$env:[A-Za-z_])",
    re.MULTILINE,
)


@dataclass(frozen=True)
class CloudScript:
    id: int  # global, never reused
    owner: str
    title: str
    content: str
    windows: bool
    created: int  # ns since the epoch


def parse_title(text: str, max_chars: int) -> str:
    title = text.strip()
    if not title or len(title) > max_chars or any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in title):
        raise Invalid(f"title must be one line of 1 to {max_chars} characters")
    return title


def parse_content(text: str, max_bytes: int, windows: bool) -> str:
    """The script as given, if it is not empty, fits the limit and (for Linux) names no
    interpreter by a relative path."""
    if not text.strip():
        raise Invalid("content must not be empty")
    if len(text.encode("utf-8")) > max_bytes:
        raise Invalid(f"content larger than {max_bytes} bytes: the script goes into the guest's user-data")
    if not windows:
        check_interpreter(text)
    return text


def check_interpreter(content: str) -> None:
    """Invalid when the script's `#!` line names its interpreter by a relative path."""
    first = content.lstrip("\ufeff").split("\n", 1)[0].rstrip("\r")
    if not first.startswith("#!"):
        return
    words = first[2:].split()
    if not words or not words[0].startswith("/"):
        raise Invalid(f"{RELATIVE_PATH}: the #! line must name its interpreter by an absolute path")
    if words[0].rsplit("/", 1)[-1] == "env":
        program = next((w for w in words[1:] if not w.startswith("-") and "=" not in w), None)
        if program is not None and "/" in program and not program.startswith("/"):
            raise Invalid(f"{RELATIVE_PATH}: {program[:60]}")


def looks_like_powershell(content: str) -> bool:
    first = content.lstrip("\ufeff \t\r\n").split("\n", 1)[0].strip().lower()
    if first in _PS_MARKERS:
        return True
    if first.startswith("#!") and any(word in first for word in ("pwsh", "powershell")):
        return True
    return _CMDLET.search(content) is not None


def check_for_image(content: str, windows_script: bool, windows_image: bool, field: str) -> None:
    """Whether a script may run on a server of this kind of image; Invalid naming `field` if not.
    A Windows image takes any script (cloudbase-init picks its runner by the first line)."""
    if windows_image:
        return
    if windows_script:
        raise Invalid(f"{POWERSHELL_ON_LINUX} ({field} is a windows script)")
    if looks_like_powershell(content):
        raise Invalid(f"{POWERSHELL_ON_LINUX} ({field} is PowerShell)")
    try:
        check_interpreter(content)
    except Invalid as e:
        raise Invalid(f"{e.message} ({field})") from None


def parse_env(text: str, max_bytes: int, field: str = "user_customize_env") -> tuple[tuple[str, str], ...]:
    """`NAME=value` lines → (NAME, value) pairs in their order; Invalid naming `field` otherwise."""
    if len(text.encode("utf-8")) > max_bytes:
        raise Invalid(f"{BAD_ENV}: {field} larger than {max_bytes} bytes")
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for number, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, equals, value = line.partition("=")
        if not equals or not _NAME.match(name):
            raise Invalid(f"{BAD_ENV}: {field} line {number} is not NAME=value with NAME a shell identifier")
        if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value):
            raise Invalid(f"{BAD_ENV}: {field} line {number} holds a control character")
        if name in seen:
            raise Invalid(f"{BAD_ENV}: {field} gives {name} twice")
        seen.add(name)
        pairs.append((name, value))
    return tuple(pairs)
