"""The access log's batched writer: every line, in order, in the root format, in few writes."""

from __future__ import annotations

import io
import logging
import threading
import time
from types import SimpleNamespace

from elastic_api.http.access_log import LINE_FORMAT, AccessLog, BatchedLines, batched_access_log


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


def _served(path: str) -> tuple[SimpleNamespace, SimpleNamespace]:
    request = SimpleNamespace(remote="127.0.0.1", method="GET", raw_path=path, path_qs=path, get=lambda key: None)
    return request, SimpleNamespace(status=200, content_length=12)


def test_the_ready_made_line_is_the_one_the_logging_module_would_write():
    """In our own format the access log hands the handler a finished line (no LogRecord); the
    line is byte for byte what the formatter makes of the same record, its time included."""
    made = io.StringIO()
    handler = BatchedLines(made, interval=3600)
    handler.setFormatter(logging.Formatter(LINE_FORMAT))
    logger = logging.Logger("aiohttp.access", logging.INFO)
    logger.addHandler(handler)
    logger.propagate = False
    before = time.time()
    AccessLog(logger, "").log(*_served("/drives/list?limit=2"), 0.25)  # type: ignore[arg-type]
    after = time.time()
    handler.close()
    (line,) = made.getvalue().splitlines()
    message = '127.0.0.1 "GET /drives/list?limit=2" 200 12 0.250000s'
    stamp = line.split(" INFO ")[0]
    assert line == f"{stamp} INFO aiohttp.access: {message}"
    formatter = logging.Formatter(LINE_FORMAT)
    expected = set()
    for now in (before, after):
        reference = logging.LogRecord("aiohttp.access", logging.INFO, __file__, 1, message, (), None)
        reference.created, reference.msecs = now, int((now - int(now)) * 1000)
        expected.add(formatter.formatTime(reference))
    assert min(expected) <= stamp <= max(expected)


def test_another_format_or_a_second_listener_goes_through_the_logging_module():
    made = io.StringIO()
    handler = BatchedLines(made, interval=3600)
    handler.setFormatter(logging.Formatter("OTHER %(name)s: %(message)s"))
    logger = logging.Logger("aiohttp.access", logging.INFO)
    logger.addHandler(handler)
    logger.propagate = False
    AccessLog(logger, "").log(*_served("/x"), 1.0)  # type: ignore[arg-type]
    seen = io.StringIO()
    logger.addHandler(logging.StreamHandler(seen))
    handler.setFormatter(logging.Formatter(LINE_FORMAT))
    AccessLog(logger, "").log(*_served("/y"), 1.0)  # type: ignore[arg-type]
    handler.close()
    lines = made.getvalue().splitlines()
    assert lines[0] == 'OTHER aiohttp.access: 127.0.0.1 "GET /x" 200 12 1.000000s'
    assert lines[1].endswith('INFO aiohttp.access: 127.0.0.1 "GET /y" 200 12 1.000000s')
    assert seen.getvalue() == '127.0.0.1 "GET /y" 200 12 1.000000s\n'


def test_the_path_is_logged_as_sent_unless_it_could_end_the_quoted_field():
    made = io.StringIO()
    handler = BatchedLines(made, interval=3600)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.Logger("aiohttp.access", logging.INFO)
    logger.addHandler(handler)
    logger.propagate = False
    as_sent, quoted = _served("/drives/a%20b/info?x=1")
    as_sent.path_qs = "/drives/a b/info?x=1"  # what the parsed URL would give: the text sent wins
    AccessLog(logger, "").log(as_sent, quoted, 1.0)  # type: ignore[arg-type]
    for raw in ('/x"y', "/x\u2028y"):
        request, response = _served(raw)
        request.path_qs = "/x%22y"  # re-encoded by the parsed URL
        AccessLog(logger, "").log(request, response, 1.0)  # type: ignore[arg-type]
    handler.close()
    assert made.getvalue().splitlines() == [
        '127.0.0.1 "GET /drives/a%20b/info?x=1" 200 12 1.000000s',
        '127.0.0.1 "GET /x%22y" 200 12 1.000000s',
        '127.0.0.1 "GET /x%22y" 200 12 1.000000s',
    ]
