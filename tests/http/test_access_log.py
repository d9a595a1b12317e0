"""The access log's batched writer: every line, in order, in the root format, in few writes."""

from __future__ import annotations

import io
import logging
import threading
import time

from elastic_api.http.access_log import BatchedLines, batched_access_log


class CountingStream(io.StringIO):
    def __init__(self):
        super().__init__()
        self.writes = 0
        self.lock = threading.Lock()

    def write(self, text):
        with self.lock:
            self.writes += 1
            return super().write(text)


def record(message, name="aiohttp.access"):
    return logging.LogRecord(name, logging.INFO, __file__, 1, message, (), None)


def test_lines_gather_and_are_written_together_in_order():
    stream = CountingStream()
    handler = BatchedLines(stream, interval=3600)  # the timer never fires in this test
    try:
        for n in range(500):
            handler.emit(record(f"line {n}"))
        assert stream.getvalue() == "" and stream.writes == 0
        handler.flush()
        assert stream.getvalue().splitlines() == [f"line {n}" for n in range(500)]
        assert stream.writes == 1
    finally:
        handler.close()


def test_the_writer_thread_writes_within_the_interval():
    stream = CountingStream()
    handler = BatchedLines(stream, interval=0.05)
    try:
        handler.emit(record("soon"))
        deadline = time.monotonic() + 10
        while "soon" not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stream.getvalue() == "soon\n"
    finally:
        handler.close()


def test_a_full_batch_is_written_at_once_and_close_writes_the_rest():
    stream = CountingStream()
    handler = BatchedLines(stream, interval=3600, max_lines=10)
    for n in range(25):
        handler.emit(record(f"{n}"))
    assert stream.getvalue().splitlines() == [str(n) for n in range(20)]
    handler.close()
    assert stream.getvalue().splitlines() == [str(n) for n in range(25)]
    assert stream.writes == 3


def test_a_broken_stream_loses_lines_not_the_caller():
    stream = io.StringIO()
    handler = BatchedLines(stream, interval=3600)
    stream.close()
    handler.emit(record("lost"))
    handler.flush()
    handler.close()


def test_access_lines_take_the_root_format_and_only_while_open(monkeypatch):
    root = logging.getLogger()
    formatter = logging.Formatter("ROOT %(levelname)s %(name)s: %(message)s")
    passthrough = logging.StreamHandler(io.StringIO())
    passthrough.setFormatter(formatter)
    monkeypatch.setattr(root, "handlers", [passthrough])
    access = logging.getLogger("aiohttp.access")
    monkeypatch.setattr(access, "disabled", False)
    level = access.level
    access.setLevel(logging.INFO)  # setLevel, not the attribute: it clears the loggers' cached answers
    try:
        stream = io.StringIO()
        with batched_access_log(stream):
            access.info("%s %d", "GET /drives/list", 200)
            assert passthrough.stream.getvalue() == ""  # not through the root's own handler
        assert stream.getvalue() == "ROOT INFO aiohttp.access: GET /drives/list 200\n"
        assert access.propagate and not [h for h in access.handlers if isinstance(h, BatchedLines)]
        access.info("after")
        assert "after" in passthrough.stream.getvalue() and "after" not in stream.getvalue()
    finally:
        access.setLevel(level)


def test_lines_from_several_threads_are_all_written_whole():
    threads = 4
    stream = CountingStream()
    handler = BatchedLines(stream, interval=0.001, max_lines=7)

    def emit(t):
        for n in range(300):
            handler.emit(record(f"t{t} n{n}"))

    workers = [threading.Thread(target=emit, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    handler.close()
    lines = stream.getvalue().splitlines()
    assert sorted(lines) == sorted(f"t{t} n{n}" for t in range(threads) for n in range(300))
    for t in range(threads):  # each thread's own lines keep their order
        assert [line for line in lines if line.startswith(f"t{t} ")] == [f"t{t} n{n}" for n in range(300)]
