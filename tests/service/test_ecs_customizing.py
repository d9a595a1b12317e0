"""The serial-marker parser and the watcher on a real file written while it watches."""

from __future__ import annotations

import asyncio

from elastic_api.model.serial_markers import MAX_LINE, Scan, feed
from elastic_api.service.ecs_customizing import watch

IDS = frozenset({"ec100001"})


def test_markers_across_reads_and_crlf():
    scan = feed(Scan(), b"boot...\r\nELASTIC-API CUSTOMIZE BEG", IDS)
    assert not scan.markers.begun
    scan = feed(scan, b"IN ec100001\r\nnoise\r\n", IDS)
    assert scan.markers.begun and not scan.markers.ended
    scan = feed(scan, b"ELASTIC-API CUSTOMIZE END ec100001 rc=3\r\n", IDS)
    assert scan.markers.rc == 3


def test_other_instances_and_malformed_lines_do_not_count():
    scan = feed(Scan(), b"ELASTIC-API CUSTOMIZE BEGIN ec100002\nELASTIC-API CUSTOMIZE END ec100001 rc=x\n", IDS)
    assert not scan.markers.begun and scan.markers.rc is None
    scan = feed(Scan(), b"x" * (MAX_LINE + 1), IDS)
    assert scan.carry == b""


async def test_watch_sees_begin_then_end(tmp_path):
    log = tmp_path / "serial.log"
    begun: list[bool] = []

    async def on_begin() -> None:
        begun.append(True)

    async def guest() -> None:
        await asyncio.sleep(0.05)
        log.write_bytes(b"ELASTIC-API CUSTOMIZE BEGIN ec100001\r\n")
        await asyncio.sleep(0.05)
        assert begun == [True]
        with open(log, "ab") as f:
            f.write(b"ELASTIC-API CUSTOMIZE END ec100001 rc=0\r\n")

    outcome, _ = await asyncio.gather(watch(log, IDS, poll=0.01, give_up_after=30, on_begin=on_begin), guest())
    assert outcome.rc == 0 and outcome.note == ""


async def test_watch_gives_up_at_the_deadline(tmp_path):
    log = tmp_path / "serial.log"
    log.write_bytes(b"ELASTIC-API CUSTOMIZE BEGIN ec100001\n")

    async def on_begin() -> None:
        pass

    outcome = await watch(log, IDS, poll=0.01, give_up_after=0.1, on_begin=on_begin)
    assert outcome.rc is None and "did not report its end" in outcome.note
