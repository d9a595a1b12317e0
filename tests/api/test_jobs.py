"""Jobs in the real program: an image job's progress as clients see it, a job cut short by SIGKILL
resumed at the restart (at once: the lease is this node's own) and completed, and a
failure that stays visible across a restart while the drive stays usable."""

from __future__ import annotations

import hashlib
import re
import socket
import time

from tests.api import test_crash
from tests.api.test_crash import MiB, pattern, wait_for

crashed = test_crash.crashed  # the fixture: a server on its data directory, killed and restarted

# A lease far longer than the test may wait: the job must come back because it is this
# installation's, never because its lease ran out.
LONG_LEASE = {"job_lease_seconds": 3600, "job_heartbeat_seconds": 1}


def percent(info: dict) -> int | None:
    match = re.fullmatch(r"(\d+)%", info.get("imaging", ""))
    return int(match.group(1)) if match else None


def test_progress_climbs_and_a_killed_job_resumes_and_completes(crashed):
    c = crashed(**LONG_LEASE)
    size = 48 * MiB
    data = pattern(21, size)
    source, target, back = c.create_drive("48M"), c.create_drive("64M"), c.create_drive("48M")
    for offset in range(0, size, 4 * MiB):
        assert c.write(source, offset, data[offset : offset + 4 * MiB]) == 204
    assert c.call(f"/drives/{target}/image/{source}/gzip")[0] == 204

    seen: list[int] = []

    def part_way() -> bool:
        info = c.info(f"/drives/{target}/info")
        if (p := percent(info)) is not None:
            assert info["claimed"] == [f"image:{source}"]
            seen.append(p)
        return bool(seen) and seen[-1] >= 5

    wait_for(part_way, 60, "the job to be part-way")
    assert seen == sorted(seen) and seen[-1] < 100, seen  # never back, never 100% while copying
    c.kill()
    ((status, holder),) = c.rows("SELECT status, lease_holder FROM jobs")
    assert status == "running"
    # The installation's ID and this node's name (the host's by default): the restart is the
    # same node, so it takes the job back at once.
    assert holder == (c.data / "installation-id").read_text().strip() + "/" + socket.gethostname()

    restarted = time.time_ns()
    c.restart()
    c.check(timeout=120)
    ((status, progress, started, finished, error),) = c.rows(
        "SELECT status, progress, started, finished, error FROM jobs"
    )
    assert (status, progress, error) == ("done", 100, None) and restarted < started < finished
    info = c.info(f"/drives/{target}/info")
    assert "imaging" not in info and "imaging:error" not in info and info["claimed"] == []

    # The gzip stream the resumed job wrote is whole: it unpacks to the source's bytes.
    assert c.call(f"/drives/{back}/image/{target}/gunzip")[0] == 204
    c.check(timeout=120)
    assert c.checksum(back, 0, size) == hashlib.sha256(data).hexdigest()
    assert c.write(target, 0, b"writable again") == 204


def test_a_failure_stays_visible_across_a_restart_and_the_drive_stays_usable(crashed):
    c = crashed()
    source, target = c.create_drive("1M"), c.create_drive("1M")
    assert c.write(source, 0, b"not gzip at all") == 204
    assert c.call(f"/drives/{target}/image/{source}/gunzip")[0] == 204

    def failed() -> str | None:
        info = c.info(f"/drives/{target}/info")
        return None if "imaging" in info else info.get("imaging:error")

    error = wait_for(failed, 60, "the job to fail")
    assert "gzip" in error
    assert c.server.stop() == 0
    c.restart()
    info = c.info(f"/drives/{target}/info")
    assert info["imaging:error"] == error and "imaging" not in info and info["claimed"] == []
    assert c.write(target, 0, b"usable") == 204
    assert c.call(f"/drives/{target}/image/{source}")[0] == 204  # asking again clears the mark
    c.check()
    info = c.info(f"/drives/{target}/info")
    assert "imaging:error" not in info
    assert c.checksum(target, 0, MiB) == c.checksum(source, 0, MiB)
    assert c.call(f"/drives/{target}/destroy")[0] == 204
