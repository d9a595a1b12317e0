"""In process, on a real socket: drive I/O counters that cannot be saved never fail a request,
and never put a second answer after a read's body; the flood logger's one line a second."""

from __future__ import annotations

import logging

from elastic_api.app import SERVICES
from elastic_api.http.transfer import Occasional
from tests.api.rawhttp import Target

MiB = 1 << 20


async def test_counters_that_cannot_be_saved_fail_no_request(client, alice, caplog):
    store = client.app[SERVICES].drives.store
    drive = (await alice.create_drive("4M"))["drive"]
    assert (await alice.call(f"/drives/{drive}/write/0", b"\x11" * MiB)).status == 204

    async def broken(*args, **kw):
        raise OSError("database is locked")

    store.add_drive_io = broken
    target = Target(client.server.host, client.server.port, alice.auth()["Authorization"])
    c = await target.connect()
    try:
        with caplog.at_level(logging.WARNING):
            read = await c.ask("GET", f"/drives/{drive}/read/0/{MiB}")  # raw: sent with sendfile
            assert read.status == 200 and read.body == b"\x11" * MiB
            after = await c.ask("GET", "/drives/list")  # the next answer on the connection is its own
            assert after.status == 200 and drive.encode() in after.body
            wrote = await c.ask("POST", f"/drives/{drive}/write/0", b"\x22" * 1000)
            assert wrote.status == 204
            assert (await c.ask("GET", f"/drives/{drive}/read/0/1000")).body == b"\x22" * 1000
    finally:
        c.close()
    counters = client.app[SERVICES].drives.counters
    with caplog.at_level(logging.WARNING):
        await counters.flush()  # counters are stored in batches: this one fails, and is kept
    lost = [r for r in caplog.records if "I/O counters not stored" in r.getMessage()]
    assert len(lost) == 1 and all(r.exc_info is None for r in lost)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    info = (await alice.get(f"/drives/{drive}/info")).text  # what is pending shows meanwhile
    del store.add_drive_io  # the store works again: the kept counts are stored, none lost
    await counters.flush()
    stored = await store.get_drive(alice.user, drive)
    assert (stored.read_requests, stored.write_requests) == (2, 2)
    assert "read:requests 2\n" in info and "write:requests 2\n" in info


def test_occasional_logs_a_line_an_interval_with_a_count(caplog):
    clock = [100.0]
    occasional = Occasional(logging.getLogger("tests.flood"), interval=1.0)
    import elastic_api.http.transfer as transfer

    real = transfer.time.monotonic
    transfer.time.monotonic = lambda: clock[0]
    try:
        with caplog.at_level(logging.INFO, "tests.flood"):
            for _ in range(50):
                occasional.log(logging.ERROR, "accept", "cannot accept: %s", "EMFILE")
            occasional.log(logging.ERROR, "other", "another kind")
            clock[0] += 1.0
            occasional.log(logging.ERROR, "accept", "cannot accept: %s", "EMFILE")
    finally:
        transfer.time.monotonic = real
    assert [r.getMessage() for r in caplog.records] == [
        "cannot accept: EMFILE",
        "another kind",
        "cannot accept: EMFILE (49 more like it in the last 1 s not logged)",
    ]
