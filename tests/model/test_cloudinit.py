"""The NoCloud seed's rendering and the password hash: golden checks, openssl as the reference
for SHA-512 crypt, and Debian's `cloud-init schema` as the judge of user-data."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from elastic_api.errors import Invalid
from elastic_api.model.cloudinit import (
    BEGIN_MARKER,
    END_MARKER,
    Customization,
    GuestSetup,
    check_env,
    check_password,
    check_password_hash,
    check_script,
    dump_setup,
    hash_password,
    hostname_of,
    load_setup,
    render_meta_data,
    render_user_data,
    sha512_crypt,
)

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZ0ZXN0a2V5dGVzdGtleXRlc3RrZXl0ZXN0a2V5dA test@example"
UUID = "5f3c1a8e-2b7d-4c1e-9a0f-0123456789ab"


def _openssl(password: str, salt: str) -> str:
    done = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", salt, "-stdin"], input=password.encode(), capture_output=True, check=True
    )
    return done.stdout.decode().strip()


@pytest.mark.parametrize(
    ("password", "salt"),
    [
        ("secret", "saltsalt"),
        ("x", "a"),
        ("a much longer password with spaces and symbols !@#$%^&*()", "./0123456789AZaz"),
        ("p" * 64, "exactly64"),
        ("q" * 200, "0123456789abcdefTRUNCATED"),  # the salt is cut to 16 characters
        ("pässwörd ünïcode", "unicode"),
    ],
)
def test_sha512_crypt_matches_openssl(password: str, salt: str) -> None:
    assert sha512_crypt(password, salt) == _openssl(password, salt)


def test_sha512_crypt_rounds_matches_openssl() -> None:
    done = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", "rounds=10000$saltsalt", "-stdin"],
        input=b"secret",
        capture_output=True,
        check=True,
    )
    assert sha512_crypt("secret", "saltsalt", rounds=10000) == done.stdout.decode().strip()


@settings(max_examples=25, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), min_size=1, max_size=80))
def test_sha512_crypt_matches_openssl_for_any_password(password: str) -> None:
    assert sha512_crypt(password, "fixedSALT") == _openssl(password, "fixedSALT")


def test_hash_password_is_salted_and_verifies() -> None:
    first, second = hash_password("secret"), hash_password("secret")
    assert first != second  # a fresh salt each time
    salt = first.split("$")[2]
    assert len(salt) == 16
    assert first == _openssl("secret", salt)
    assert check_password_hash(first) == first


def test_bad_salts_and_rounds_refused() -> None:
    with pytest.raises(ValueError):
        sha512_crypt("x", "")
    with pytest.raises(ValueError):
        sha512_crypt("x", "bad salt")
    with pytest.raises(ValueError):
        sha512_crypt("x", "salt", rounds=10)


@pytest.mark.parametrize("bad", ["", "x" * 129, "tab\there", "new\nline", "nul\0", "del\x7f", "c1\x85"])
def test_check_password_refuses(bad: str) -> None:
    with pytest.raises(Invalid) as caught:
        check_password(bad, 128)
    assert "password" in caught.value.message
    if bad:
        assert bad not in caught.value.message  # the value is never quoted back


@pytest.mark.parametrize("bad", ["secret", "$1$salt$abc", "$6$salt$short", "$6$bad salt$" + "a" * 86])
def test_check_password_hash_refuses(bad: str) -> None:
    with pytest.raises(Invalid):
        check_password_hash(bad)


def test_check_script_and_env() -> None:
    assert check_script("echo hi\n", 100) == "echo hi\n"
    for bad in ("", "  \n", "a\0b", "é" * 51):
        with pytest.raises(Invalid, match="user_customize"):
            check_script(bad, 100)
    assert check_env([("A_1", "x y")]) == (("A_1", "x y"),)
    for pairs in ([("1A", "x")], [("A-B", "x")], [("A", "two\nlines")]):
        with pytest.raises(Invalid, match="user_customize_env"):
            check_env(pairs)


@pytest.mark.parametrize(
    ("name", "hostname"),
    [("ec100001", "ec100001"), ("My Web Server!", "my-web-server"), ("---", "server"), ("x" * 80, "x" * 63)],
)
def test_hostname_of(name: str, hostname: str) -> None:
    assert hostname_of(name) == hostname


def test_meta_data() -> None:
    text = render_meta_data(Customization("ec100001", UUID))
    assert text == f"instance-id: {UUID}\nlocal-hostname: ec100001\n"


def test_user_data_minimal_has_no_keys_password_or_script() -> None:
    text = render_user_data(Customization("ec100001", UUID))
    assert text.startswith("#cloud-config\n")
    data = yaml.safe_load(text)
    assert data == {"hostname": "ec100001", "preserve_hostname": False, "disable_root": False}


def test_user_data_carries_keys_hash_and_script() -> None:
    password_hash = sha512_crypt("clear-password", "saltsalt")
    script = "#!/bin/sh\necho 'quoted' \"$GREETING\" > /root/done\n"
    c = Customization("ec100001", UUID, (KEY,), password_hash, script, (("GREETING", "hello 'world' $x"),))
    text = render_user_data(c)
    assert "clear-password" not in text
    data = yaml.safe_load(text)
    assert data["ssh_authorized_keys"] == [KEY]
    assert data["disable_root"] is False
    assert data["users"] == ["default", {"name": "root", "hashed_passwd": password_hash, "lock_passwd": False}]
    assert data["ssh_pwauth"] is False  # with a key, SSH stays key-only
    files = {f["path"]: f for f in data["write_files"]}
    assert files["/var/lib/elastic-api/customize/script"]["content"] == script
    env = files["/var/lib/elastic-api/customize/env"]["content"]
    assert env == "GREETING='hello '\"'\"'world'\"'\"' $x'\n"
    wrapper = files["/var/lib/elastic-api/customize/run"]["content"]
    assert f'"{BEGIN_MARKER} $1"' in wrapper and f'"{END_MARKER} $1 rc=$rc"' in wrapper
    assert data["runcmd"] == [["/var/lib/elastic-api/customize/run", UUID]]


def test_password_alone_allows_ssh_password_login() -> None:
    data = yaml.safe_load(render_user_data(Customization("h", UUID, password_hash=sha512_crypt("p", "s"))))
    assert data["ssh_pwauth"] is True


def test_user_data_refuses_a_clear_password_as_hash() -> None:
    with pytest.raises(Invalid):
        render_user_data(Customization("h", UUID, password_hash="clear-password"))


@settings(max_examples=60, deadline=None)
@given(
    script=st.text(min_size=1, max_size=200).filter(lambda s: "\0" not in s and s.strip()),
    value=st.text(max_size=40).filter(lambda s: not any(c in s for c in "\0\r\n")),
)
def test_user_text_round_trips_through_yaml(script: str, value: str) -> None:
    """Whatever the user's text, the YAML holds exactly it: nothing is pasted into YAML by hand."""
    c = Customization("h", UUID, script=script, script_env=(("V", value),))
    try:
        check_script(script, 10_000)
    except Invalid:
        return
    data = yaml.safe_load(render_user_data(c))
    files = {f["path"]: f["content"] for f in data["write_files"]}
    assert files["/var/lib/elastic-api/customize/script"] == script
    assert set(data) == {"hostname", "preserve_hostname", "disable_root", "write_files", "runcmd"}


def test_wrapper_writes_markers_and_exports_env(tmp_path: Path) -> None:
    """The wrapper runs under /bin/sh as the guest would: markers around the script, its
    environment exported, its exit code reported (paths moved under tmp_path)."""
    serial, log = tmp_path / "serial", tmp_path / "out.log"
    c = Customization("h", UUID, script='echo "got $NAME" > {out}\nexit 3\n', script_env=(("NAME", "a 'b' c"),))
    data = yaml.safe_load(render_user_data(c))
    guest = tmp_path / "customize"
    guest.mkdir()
    for f in data["write_files"]:
        name = f["path"].rsplit("/", 1)[1]
        content = f["content"].replace("/var/lib/elastic-api/customize", str(guest))
        content = content.replace("/dev/ttyS0", str(serial)).replace("/var/log/cloud-init-output.log", str(log))
        content = content.replace("{out}", str(tmp_path / "result"))
        (guest / name).write_text(content)
        (guest / name).chmod(int(f["permissions"], 8))
    done = subprocess.run([str(guest / "run"), UUID], capture_output=True)
    assert done.returncode == 3
    assert serial.read_text() == f"{BEGIN_MARKER} {UUID}\n{END_MARKER} {UUID} rc=3\n"
    assert (tmp_path / "result").read_text() == "got a 'b' c\n"


def test_setup_round_trips() -> None:
    setup = GuestSetup((KEY,), sha512_crypt("p", "s"), "echo hi\n", (("A", "b"),))
    assert load_setup(dump_setup(setup)) == setup
    assert load_setup(dump_setup(GuestSetup())) == GuestSetup()
    assert setup.customization("h", UUID) == Customization("h", UUID, *vars(setup).values())


CLOUD_INIT = shutil.which("cloud-init")


@pytest.mark.skipif(CLOUD_INIT is None, reason="Debian's cloud-init (scripts/setup.sh) is not installed")
@pytest.mark.parametrize(
    "customization",
    [
        Customization("ec100001", UUID),
        Customization("ec100001", UUID, (KEY, KEY.replace("test@", "other@"))),
        Customization("web", UUID, password_hash=sha512_crypt("p", "saltsalt")),
        Customization(
            "ec100002",
            UUID,
            (KEY,),
            sha512_crypt("p", "saltsalt"),
            "#!/bin/bash\nset -e\necho \"$A\" | tee /root/a\nprintf 'ünï\\tcode'\n",
            (("A", "x y"), ("B", "")),
        ),
    ],
)
def test_user_data_passes_cloud_init_schema(tmp_path: Path, customization: Customization) -> None:
    assert CLOUD_INIT is not None
    path = tmp_path / "user-data"
    path.write_text(render_user_data(customization))
    done = subprocess.run([CLOUD_INIT, "schema", "--config-file", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Valid cloud-config" in done.stdout


@pytest.mark.skipif(CLOUD_INIT is None, reason="Debian's cloud-init (scripts/setup.sh) is not installed")
def test_cloud_init_schema_refuses_bad_user_data(tmp_path: Path) -> None:
    """The check above can fail: the same command on a broken document."""
    assert CLOUD_INIT is not None
    path = tmp_path / "user-data"
    path.write_text("#cloud-config\nruncmd: 3\nssh_pwauth: [1]\n")
    done = subprocess.run([CLOUD_INIT, "schema", "--config-file", str(path)], capture_output=True, text=True)
    assert done.returncode != 0
