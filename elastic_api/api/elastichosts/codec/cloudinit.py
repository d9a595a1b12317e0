"""The ElasticHosts extension keys that give a server a cloud-init NoCloud seed (our own keys;
ElasticHosts had none, see docs/cloudinit.rst):

- `cloudinit on|off`: a seed with at least the hostname (the server's name as a slug) and the
  instance ID (its UUID); `off` removes it with every part. Any other `cloudinit:` key implies on.
- `cloudinit:ssh_key`: one OpenSSH public key line, for the default user and root.
- `cloudinit:password_hash`: root's password as a SHA-512 crypt hash (`openssl passwd -6`,
  `mkpasswd -m sha-512`): the clear password never travels nor is stored.
- `cloudinit:script`: a script, base64 of its UTF-8 text (a props value is one line), run once
  at the first boot between the serial markers of model/cloudinit.py.

An empty value removes a part on `set`, as with every key."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import TypeVar

from elastic_api.api.elastichosts.properties import Info
from elastic_api.errors import UsageError
from elastic_api.model.cloudinit import GuestSetup, check_password_hash, check_script
from elastic_api.model.server_patch import KEEP, CloudInitChange, Keep
from elastic_api.model.sshkey import parse_public_key

SWITCH = "cloudinit"
SSH_KEY, PASSWORD_HASH, SCRIPT = "cloudinit:ssh_key", "cloudinit:password_hash", "cloudinit:script"
KEYS = frozenset({SWITCH, SSH_KEY, PASSWORD_HASH, SCRIPT})
# What the codec alone bounds a script to (the body limit, max_metadata_body, already holds it
# near 48 KiB); the configured max_inline_script_bytes is checked by check_limits.
_CODEC_MAX_SCRIPT = 1 << 20
T = TypeVar("T")


def _switch(value: str) -> bool:
    word = value.strip().lower()
    if word not in ("on", "off"):
        raise UsageError("cloudinit must be on or off")
    return word == "on"


def _ssh_key(value: str) -> tuple[str, ...]:
    try:
        return (parse_public_key(value),)
    except UsageError as e:
        raise UsageError(f"{SSH_KEY}: {e.message}") from None


def _password_hash(value: str) -> str | None:
    return check_password_hash(value.strip(), PASSWORD_HASH)


def _script(value: str) -> str | None:
    try:
        text = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise UsageError(f"{SCRIPT} must be base64 of a UTF-8 text") from None
    return check_script(text, _CODEC_MAX_SCRIPT, SCRIPT)


def parse_setup(given: Mapping[str, str]) -> GuestSetup | None:
    """The seed a whole configuration asks for (empty values already left out), or None."""
    if not KEYS & set(given) or (SWITCH in given and not _switch(given[SWITCH])):
        return None
    return GuestSetup(
        ssh_keys=_ssh_key(given[SSH_KEY]) if SSH_KEY in given else (),
        password_hash=_password_hash(given[PASSWORD_HASH]) if PASSWORD_HASH in given else None,
        script=_script(given[SCRIPT]) if SCRIPT in given else None,
    )


def _part(props: Mapping[str, str], key: str, parse: Callable[[str], T], removed: T) -> T | Keep:
    if key not in props:
        return KEEP
    return parse(props[key]) if props[key].strip() else removed


def parse_change(props: Mapping[str, str]) -> CloudInitChange:
    """What a `set` changes: a key given replaces its part, given empty removes it; an empty or
    `off` switch removes the seed."""
    enabled = _part(props, SWITCH, _switch, False)
    return CloudInitChange(
        enabled=enabled,
        ssh_keys=_part(props, SSH_KEY, _ssh_key, ()),
        password_hash=_part(props, PASSWORD_HASH, _password_hash, None),
        script=_part(props, SCRIPT, _script, None),
    )


def info(setup: GuestSetup | None) -> Info:
    """The seed's keys as info shows them (and a set or create may send back)."""
    if setup is None:
        return {}
    shown: Info = {SWITCH: "on"}
    if setup.ssh_keys:
        shown[SSH_KEY] = setup.ssh_keys[0]
    if setup.password_hash is not None:
        shown[PASSWORD_HASH] = setup.password_hash
    if setup.script is not None:
        shown[SCRIPT] = base64.b64encode(setup.script.encode("utf-8")).decode()
    return shown


def check_limits(setup: GuestSetup | None, max_script_bytes: int) -> None:
    """The configured limit on a script (max_inline_script_bytes), said with the key's name."""
    if setup is not None and setup.script is not None:
        check_script(setup.script, max_script_bytes, SCRIPT)


__all__ = ["KEYS", "SWITCH", "check_limits", "info", "parse_change", "parse_setup"]
