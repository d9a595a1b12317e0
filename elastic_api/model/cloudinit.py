"""A guest's cloud-init NoCloud seed, rendered (pure): `meta-data` and `user-data` from a
Customization, the SHA-512 crypt(3) hash a password is kept as, and the checks on what a user
may ask a guest to arrive with (GuestSetup).

How user-data delivers each part (what cloud images expect, checked by `cloud-init schema`):
- SSH keys: `ssh_authorized_keys` (the image's default user) with `disable_root: false`, so root
  gets the same keys without the "log in as <default user>" refusal cloud images put otherwise
  (Seeweb's servers are reached as root).
- Password: root's, through the `users` module (`hashed_passwd`, `lock_passwd: false`), which
  every cloud-init since 0.7 applies to an existing user (chpasswd's `users` list is 22.3 and
  later only). `ssh_pwauth` is turned on only when a password is given and no SSH key is: the
  password then is the way in; with a key, SSH stays key-only and the password serves the console.
- Script: written by `write_files` (with its environment as a file of `export NAME='value'`
  lines, shell-quoted here) and run once per instance by `runcmd` through a fixed wrapper that
  writes the serial markers of the issue 18 seams (`ELASTIC-API CUSTOMIZE BEGIN <instance id>`,
  `ELASTIC-API CUSTOMIZE END <instance id> rc=<code>`) on /dev/ttyS0, the domain's first serial
  port; the script's own output goes to cloud-init's output log, not the serial port.

YAML is written by PyYAML's safe_dump from plain values, never by pasting user text into YAML.

Password hashing: SHA-512 crypt ($6$, Drepper's "Unix crypt using SHA-256 and SHA-512", the
glibc, shadow and `openssl passwd -6` format) is implemented here over hashlib. Python's `crypt`
module is deprecated since 3.11 and gone in 3.13, and a subprocess (`openssl passwd -6 -stdin`)
would put a password through a pipe to another program for a few lines of arithmetic. The
tests compare its output with `openssl passwd -6 -salt S` for fixed salts. Its 5,000 rounds take
tens of milliseconds of CPU: callers on the event loop run `hash_password` in a thread."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

import yaml

from elastic_api.errors import Invalid

# The markers the guest writes on its first serial port around the script (seams of issue 18).
BEGIN_MARKER = "ELASTIC-API CUSTOMIZE BEGIN"
END_MARKER = "ELASTIC-API CUSTOMIZE END"
SERIAL_PORT = "/dev/ttyS0"
# Where the guest keeps the script, its environment and our wrapper.
GUEST_DIR = "/var/lib/elastic-api/customize"
SCRIPT_LOG = "/var/log/cloud-init-output.log"
# A hostname label (RFC 1123): letters, digits and inner hyphens, at most 63 characters.
MAX_HOSTNAME = 63
# crypt(3) salts of SHA-512 crypt: at most 16 characters of this alphabet.
_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SALT_LENGTH = 16
DEFAULT_ROUNDS = 5000  # the format's default: a hash without `rounds=` means 5000
_HASH = re.compile(r"^\$6\$(rounds=[0-9]{1,9}\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{86}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# The wrapper runcmd starts (our text only: the instance ID comes as its argument).
_WRAPPER = f"""#!/bin/sh
# Runs the customization script once, between two markers on the first serial port.
dir={GUEST_DIR}
marker() {{ printf '%s\\n' "$1" >> {SERIAL_PORT} 2>/dev/null || true; }}
marker "{BEGIN_MARKER} $1"
(
  set -a
  . "$dir/env"
  set +a
  case "$(head -c 2 "$dir/script")" in
    '#!') exec "$dir/script" ;;
    *) exec /bin/sh "$dir/script" ;;
  esac
) >> {SCRIPT_LOG} 2>&1 < /dev/null
rc=$?
marker "{END_MARKER} $1 rc=$rc"
exit "$rc"
"""


@dataclass(frozen=True)
class Customization:
    """What one guest's seed says (the seam between the services and this renderer)."""

    hostname: str  # the ECS name (ec000123) or the EH server name slug
    instance_id: str  # stable per server (the engine server UUID or ECS name)
    ssh_keys: tuple[str, ...] = ()  # OpenSSH public key lines
    password_hash: str | None = None  # crypt(3) SHA-512 "$6$..." ; the clear password is never stored
    script: str | None = None  # the script text (inline, or from the library)
    script_env: tuple[tuple[str, str], ...] = ()  # NAME=value pairs from user_customize_env


@dataclass(frozen=True)
class GuestSetup:
    """What a user asked a server's guest to arrive with, kept with the server (its engine
    configuration, and the ECS row until the engine server exists). The hostname and instance ID
    come from the server itself (customization)."""

    ssh_keys: tuple[str, ...] = ()
    password_hash: str | None = None
    script: str | None = None
    script_env: tuple[tuple[str, str], ...] = ()

    def customization(self, hostname: str, instance_id: str) -> Customization:
        return Customization(hostname, instance_id, self.ssh_keys, self.password_hash, self.script, self.script_env)


# --- hostnames ---------------------------------------------------------------------------------


def hostname_of(name: str) -> str:
    """A server's name as a hostname: lower-case, runs of other characters made one hyphen, at
    most 63 characters; `server` when nothing is left."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:MAX_HOSTNAME].strip("-")
    return slug or "server"


# --- passwords ---------------------------------------------------------------------------------


def check_password(password: str, max_length: int, field: str = "password") -> str:
    """Invalid (naming the field, never quoting the value) unless the password is 1 to max_length
    printable characters."""
    if not password or len(password) > max_length:
        raise Invalid(f"{field} must be 1 to {max_length} characters")
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in password):
        raise Invalid(f"{field} must not hold control characters")
    return password


def check_password_hash(text: str, field: str = "password hash") -> str:
    """A SHA-512 crypt hash as `openssl passwd -6` or mkpasswd write it; Invalid otherwise."""
    if not _HASH.match(text):
        raise Invalid(f"{field} must be a SHA-512 crypt hash ($6$salt$hash)")
    return text


def _b64_24(b2: int, b1: int, b0: int, n: int) -> str:
    w = (b2 << 16) | (b1 << 8) | b0
    out = []
    for _ in range(n):
        out.append(_ITOA64[w & 0x3F])
        w >>= 6
    return "".join(out)


# The order SHA-512 crypt writes the final digest's bytes in, three at a time.
_ORDER = (
    (0, 21, 42),
    (22, 43, 1),
    (44, 2, 23),
    (3, 24, 45),
    (25, 46, 4),
    (47, 5, 26),
    (6, 27, 48),
    (28, 49, 7),
    (50, 8, 29),
    (9, 30, 51),
    (31, 52, 10),
    (53, 11, 32),
    (12, 33, 54),
    (34, 55, 13),
    (56, 14, 35),
    (15, 36, 57),
    (37, 58, 16),
    (59, 17, 38),
    (18, 39, 60),
    (40, 61, 19),
    (62, 20, 41),
)


def _repeat(digest: bytes, length: int) -> bytes:
    return (digest * (length // len(digest) + 1))[:length]


def sha512_crypt(password: str, salt: str, rounds: int = DEFAULT_ROUNDS) -> str:
    """crypt(3) SHA-512 of password with salt (its first 16 characters), as `$6$salt$hash`
    (`$6$rounds=N$salt$hash` when rounds is not the default)."""
    if not 1000 <= rounds <= 999_999_999:
        raise ValueError("rounds must be between 1000 and 999999999")
    if not salt or any(c not in _ITOA64 for c in salt):
        raise ValueError("salt must be characters of [./0-9A-Za-z]")
    p, s = password.encode(), salt[:SALT_LENGTH].encode()
    b = hashlib.sha512(p + s + p).digest()
    a = hashlib.sha512(p + s)
    a.update(_repeat(b, len(p)))
    n = len(p)
    while n:
        a.update(b if n & 1 else p)
        n >>= 1
    c = a.digest()
    p_seq = _repeat(hashlib.sha512(p * len(p)).digest(), len(p))
    s_seq = _repeat(hashlib.sha512(s * (16 + c[0])).digest(), len(s))
    for i in range(rounds):
        h = hashlib.sha512(p_seq if i & 1 else c)
        if i % 3:
            h.update(s_seq)
        if i % 7:
            h.update(p_seq)
        h.update(c if i & 1 else p_seq)
        c = h.digest()
    encoded = "".join(_b64_24(c[x], c[y], c[z], 4) for x, y, z in _ORDER) + _b64_24(0, 0, c[63], 2)
    prefix = "$6$" if rounds == DEFAULT_ROUNDS else f"$6$rounds={rounds}$"
    return f"{prefix}{s.decode()}${encoded}"


def hash_password(password: str) -> str:
    """The password's SHA-512 crypt hash with a fresh random salt (CPU work: run in a thread)."""
    salt = "".join(secrets.choice(_ITOA64) for _ in range(SALT_LENGTH))
    return sha512_crypt(password, salt)


# --- scripts and their environment ---------------------------------------------------------------


def check_script(script: str, max_bytes: int, field: str = "user_customize") -> str:
    """Invalid unless the script is text of 1 to max_bytes UTF-8 bytes without NUL characters."""
    if not script.strip():
        raise Invalid(f"{field} must not be empty")
    if len(script.encode("utf-8", "surrogatepass")) > max_bytes:
        raise Invalid(f"{field} must be at most {max_bytes} bytes")
    if "\0" in script or any(0xD800 <= ord(c) <= 0xDFFF for c in script):
        raise Invalid(f"{field} must be text without NUL characters")
    return script


def check_env(pairs: Sequence[tuple[str, str]], field: str = "user_customize_env") -> tuple[tuple[str, str], ...]:
    """Invalid unless each name is a shell variable name and each value one line."""
    for name, value in pairs:
        if not _ENV_NAME.match(name):
            raise Invalid(f"{field}: {name[:40]!r} is not a variable name")
        if any(c in value for c in "\0\n\r"):
            raise Invalid(f"{field}: the value of {name} must be one line")
    return tuple(pairs)


# --- rendering ---------------------------------------------------------------------------------


def _yaml(data: object) -> str:
    return yaml.safe_dump(data, default_flow_style=False, sort_keys=False, allow_unicode=False, width=1 << 16)


def render_meta_data(c: Customization) -> str:
    return _yaml({"instance-id": c.instance_id, "local-hostname": c.hostname})


def _env_file(pairs: Sequence[tuple[str, str]]) -> str:
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in pairs)


def render_user_data(c: Customization) -> str:
    """`#cloud-config` user-data for the customization (see the module's docstring)."""
    config: dict[str, object] = {
        "hostname": c.hostname,
        "preserve_hostname": False,
        "disable_root": False,
    }
    if c.ssh_keys:
        config["ssh_authorized_keys"] = list(c.ssh_keys)
    if c.password_hash is not None:
        check_password_hash(c.password_hash)
        config["users"] = ["default", {"name": "root", "hashed_passwd": c.password_hash, "lock_passwd": False}]
        config["ssh_pwauth"] = not c.ssh_keys
    if c.script is not None:
        check_env(c.script_env)
        config["write_files"] = [
            {"path": f"{GUEST_DIR}/script", "permissions": "0700", "owner": "root:root", "content": c.script},
            {
                "path": f"{GUEST_DIR}/env",
                "permissions": "0600",
                "owner": "root:root",
                "content": _env_file(c.script_env),
            },
            {"path": f"{GUEST_DIR}/run", "permissions": "0700", "owner": "root:root", "content": _WRAPPER},
        ]
        config["runcmd"] = [[f"{GUEST_DIR}/run", c.instance_id]]
    return "#cloud-config\n" + _yaml(config)


# --- kept with a server --------------------------------------------------------------------------


def dump_setup(setup: GuestSetup) -> str:
    """The setup as the stores keep it (JSON)."""
    return json.dumps(
        {
            "ssh_keys": list(setup.ssh_keys),
            "password_hash": setup.password_hash,
            "script": setup.script,
            "script_env": [list(pair) for pair in setup.script_env],
        }
    )


def load_setup(text: str) -> GuestSetup:
    data = json.loads(text)
    return GuestSetup(
        ssh_keys=tuple(data.get("ssh_keys", ())),
        password_hash=data.get("password_hash"),
        script=data.get("script"),
        script_env=tuple((str(n), str(v)) for n, v in data.get("script_env", ())),
    )


__all__ = [
    "BEGIN_MARKER",
    "END_MARKER",
    "Customization",
    "GuestSetup",
    "check_env",
    "check_password",
    "check_password_hash",
    "check_script",
    "dump_setup",
    "hash_password",
    "hostname_of",
    "load_setup",
    "render_meta_data",
    "render_user_data",
    "sha512_crypt",
]
