"""Transient failures are retried, usage errors are not, killed transfers resume, --verify catches damage."""

from __future__ import annotations

import asyncio
import os
import shlex
import signal

import pytest

from tests.tools.conftest import BIN, MiB, finish, mixed, start_tool, tool
from tests.tools.test_transfer import created_drive

FAST_RETRY = ("--retry-delay", "0.02")


async def wait_for(condition, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_upload_retries_503_and_resets(account, proxy, tmp_path):
    data = mixed(5 * MiB + 3, seed=11)
    source = tmp_path / "source"
    source.write_bytes(data)
    proxy.fail("/write/", "503", "reset", "500", "reset")
    proxy.fail("/drives/create", "503")  # the server did not act: even a create is sent again
    up = await tool("elastichosts-upload", *FAST_RETRY, "-c", "1M", source, env=account.env(url=proxy.url))
    assert up.returncode == 0, up.stderr
    assert "503 busy: injected 503" in up.stderr and "retry 1 of 8" in up.stderr
    assert up.stderr.count("retry") == 5 and "Restart with" not in up.stderr
    assert proxy.faults == {"/write/": [], "/drives/create": []}
    drive = created_drive(up.stdout)
    assert account.read_drive(drive, len(data)) == data


async def test_download_retries_resets_short_bodies_and_busy(account, proxy, tmp_path):
    data = mixed(4 * MiB + 1, seed=12)
    source, copy = tmp_path / "source", tmp_path / "copy"
    source.write_bytes(data)
    drive = created_drive((await tool("elastichosts-upload", source, env=account.env())).stdout)
    proxy.fail("/read/", "reset", "short", "503")
    proxy.fail("/info", "500")
    down = await tool(
        "elastichosts-download", *FAST_RETRY, "-q", "-c", "1M", drive, copy, env=account.env(url=proxy.url)
    )
    assert down.returncode == 0 and down.stderr == "", down.stderr  # -q: the retries happen silently
    assert proxy.faults == {"/read/": [], "/info": []}
    assert copy.read_bytes() == data


@pytest.mark.parametrize("status", ["400", "404"])
async def test_usage_errors_are_not_retried(account, proxy, tmp_path, status):
    source = tmp_path / "source"
    source.write_bytes(os.urandom(3 * MiB))
    proxy.fail("/write/", status)
    up = await tool("elastichosts-upload", "-c", "1M", "-p", "1", source, env=account.env(url=proxy.url))
    assert up.returncode == 1 and "retry" not in up.stderr
    assert f"chunk at offset 0: {status}" in up.stderr
    assert proxy.seen["/write/"] == 1
    # The printed command resumes the upload (here, from the start) into the drive already created.
    restart = shlex.split(up.stderr.split("Restart with: ")[1].splitlines()[0])
    assert restart[0] == str(BIN / "elastichosts-upload")
    assert restart[restart.index("-o") + 1] == "0" and "--skip-zeros" in restart
    again = await finish(await start_tool(*restart_args(restart), env=account.env()))
    assert again.returncode == 0, again.stderr
    drive = restart[restart.index("-d") + 1]
    assert account.read_drive(drive, 3 * MiB) == source.read_bytes()


def restart_args(words: list[str]) -> list[str]:
    return [os.path.basename(words[0]), *words[1:]]


async def test_retries_give_up_with_a_resume_command(account, proxy, tmp_path):
    source = tmp_path / "source"
    source.write_bytes(os.urandom(2 * MiB))
    proxy.fail("/write/1048576", *["500"] * 3)
    up = await tool(
        "elastichosts-upload",
        "--retries",
        "2",
        *FAST_RETRY,
        "-c",
        "1M",
        "-p",
        "1",
        source,
        env=account.env(url=proxy.url),
    )
    assert up.returncode == 1
    assert "chunk at offset 1048576: 500 system: injected 500 (gave up after 2 retries)" in up.stderr
    restart = shlex.split(up.stderr.split("Restart with: ")[1].splitlines()[0])
    assert restart[restart.index("-o") + 1] == "1048576" and "--retries" in restart


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
async def test_killed_upload_resumes(account, proxy, tmp_path, sig):
    chunk = 64 * 1024
    data = mixed(4 * MiB + 12345, seed=13)
    source = tmp_path / "source"
    source.write_bytes(data)
    proxy.delays["/write/"] = 0.02  # slow enough to be caught partway
    process = await start_tool("elastichosts-upload", "-c", "64k", "-p", "1", source, env=account.env(url=proxy.url))
    await wait_for(lambda: proxy.seen["/write/"] >= 10)
    process.send_signal(sig)
    killed = await finish(process)
    assert killed.returncode == (128 + sig if sig == signal.SIGTERM else -sig)
    drive = created_drive(killed.stdout)
    if sig == signal.SIGTERM:
        restart = shlex.split(killed.restart_command())
        offset = int(restart[restart.index("-o") + 1])
        assert "interrupted by SIGTERM" in killed.stderr
        assert 9 * chunk <= offset < len(data) and restart[restart.index("-d") + 1] == drive
    else:
        # No chance to print anything: resume from what the drive says it has taken, in whole chunks
        # (zero chunks were skipped, so this can only be lower than the truth, which is safe).
        written = int(account.info(drive)["write:bytes"])
        offset = written // chunk * chunk
        assert offset > 0
        restart = [
            str(BIN / "elastichosts-upload"),
            "-c",
            "64k",
            "-d",
            drive,
            "-o",
            str(offset),
            "--skip-zeros",
            str(source),
        ]
    resumed = await finish(await start_tool(*restart_args(restart), env=account.env()))
    assert resumed.returncode == 0, resumed.stderr
    assert account.read_drive(drive, len(data)) == data


async def test_killed_download_resumes_from_a_safe_file_size(account, proxy, tmp_path):
    data = mixed(6 * MiB + 321, seed=14)
    source, copy = tmp_path / "source", tmp_path / "copy"
    source.write_bytes(data)
    drive = created_drive((await tool("elastichosts-upload", source, env=account.env())).stdout)
    proxy.delays["/read/"] = 0.02
    process = await start_tool(
        "elastichosts-download", "-c", "64k", "-p", "4", drive, copy, env=account.env(url=proxy.url)
    )
    await wait_for(lambda: proxy.seen["/read/"] >= 12)
    process.kill()
    await finish(process)
    # Chunks finish out of order, but the file only ever grows over complete, in-order bytes.
    partial = copy.read_bytes()
    assert 0 < len(partial) < len(data) and partial == data[: len(partial)]
    resumed = await tool("elastichosts-download", "-c", "1M", drive, copy, env=account.env())
    assert resumed.returncode == 0, resumed.stderr
    assert copy.read_bytes() == data


async def test_interrupted_download_prints_its_restart(account, proxy, tmp_path):
    data = os.urandom(2 * MiB)
    source, copy = tmp_path / "source", tmp_path / "copy"
    source.write_bytes(data)
    drive = created_drive((await tool("elastichosts-upload", source, env=account.env())).stdout)
    proxy.delays["/read/"] = 0.02
    process = await start_tool(
        "elastichosts-download", "-c", "32k", "-p", "2", drive, copy, env=account.env(url=proxy.url)
    )
    await wait_for(lambda: proxy.seen["/read/"] >= 8)
    process.send_signal(signal.SIGINT)
    stopped = await finish(process)
    assert stopped.returncode == 128 + signal.SIGINT
    restart = shlex.split(stopped.restart_command())
    assert int(restart[restart.index("-o") + 1]) == copy.stat().st_size
    assert restart[-2:] == [drive, str(copy)]
    resumed = await finish(await start_tool(*restart_args(restart), env=account.env()))
    assert resumed.returncode == 0 and copy.read_bytes() == data


async def test_verify_catches_corruption_in_transit(account, proxy, tmp_path):
    data = mixed(3 * MiB, seed=15)
    source, copy = tmp_path / "source", tmp_path / "copy"
    source.write_bytes(data)
    drive = created_drive((await tool("elastichosts-upload", source, env=account.env())).stdout)
    proxy.corrupt.add("/read/")
    down = await tool("elastichosts-download", "--verify", "-c", "1M", drive, copy, env=account.env(url=proxy.url))
    assert down.returncode == 1
    assert "Verify FAILED: the drive differs from the file in bytes 0-3145727 (server-side checksum)" in down.stderr
    assert shlex.split(down.restart_command())[-4:] == ["-o", "0", drive, str(copy)]


async def test_verify_falls_back_to_downloading_without_a_checksum_command(account, proxy, tmp_path):
    data = mixed(2 * MiB + 17, seed=16)
    source = tmp_path / "source"
    source.write_bytes(data)
    proxy.fail("/checksum/", "404")
    up = await tool("elastichosts-upload", "--verify", source, env=account.env(url=proxy.url))
    assert up.returncode == 0, up.stderr
    assert f"Verified {len(data)} bytes: SHA-256 matches (downloaded and hashed here" in up.stdout
    assert proxy.seen["/read/"] >= 1
