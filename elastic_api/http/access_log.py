"""The access log: one line per request, written in batches from a thread of its own."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import IO

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from elastic_api.http.transfer import TRANSFER as TRANSFER_KEY


class BatchedLines(logging.Handler):
    """Formats each record at once and writes what gathered every `interval` seconds, in one
    write, from a thread of its own. Writing each line as it comes cost a busy server a sixth
    of its requests: every write gives up the interpreter lock on the event loop's thread,
    which then waits for a worker thread to hand it back. Lines reach the stream at most
    `interval` late and in order; closing the handler writes what is left."""

    def __init__(self, stream: IO[str], interval: float = 0.2, max_lines: int = 10_000) -> None:
        super().__init__()
        self.stream, self.interval, self.max_lines = stream, interval, max_lines
        self._lines: list[str] = []
        self._gathered = threading.Lock()  # guards _lines between emitters and the writer
        self._written = threading.Lock()  # keeps two writes of batches from interleaving
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._run, name="access-log", daemon=True)
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.add(line)

    def add(self, line: str) -> None:
        """A line already formatted, queued as a record's would be."""
        with self._gathered:
            self._lines.append(line)
            full = len(self._lines) >= self.max_lines
        if full:  # a burst larger than memory should hold: written now, on the emitter's thread
            self.flush()

    def flush(self) -> None:
        with self._written:
            with self._gathered:
                lines, self._lines = self._lines, []
            if lines:
                try:
                    self.stream.write("\n".join(lines) + "\n")
                    self.stream.flush()
                except (OSError, ValueError):  # a closed or broken stream: the lines are lost, not the server
                    pass

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        if self._writer.is_alive() and self._writer is not threading.current_thread():
            self._writer.join()
        self.flush()
        super().close()


@contextlib.contextmanager
def batched_access_log(stream: IO[str]) -> Iterator[None]:
    """The access logger writes through a BatchedLines in the root handler's format while this
    is open; its lines no longer go through the root's handlers."""
    access = logging.getLogger("aiohttp.access")
    root_formats = [h.formatter for h in logging.getLogger().handlers if h.formatter is not None]
    handler = BatchedLines(stream)
    handler.setFormatter(root_formats[0] if root_formats else logging.Formatter())
    access.addHandler(handler)
    access.propagate = False
    try:
        yield
    finally:
        access.propagate = True
        access.removeHandler(handler)
        handler.close()


# The format `elastic-api` logs in (cli.py); a handler with it lets the access log skip the
# logging module's record, which was a fifth of a small request's time.
LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Stamp:
    """`logging.Formatter`'s default asctime (local time, comma, milliseconds), the seconds part
    made once a second rather than once a line."""

    def __init__(self) -> None:
        self._second, self._text = -1, ""

    def __call__(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second, self._text = second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self._text},{int((now - second) * 1000):03d}"


def _direct(logger: logging.Logger) -> BatchedLines | None:
    """The logger's one handler when lines can go to it ready-made: a BatchedLines in our format,
    nothing else listening (no propagation, no filters)."""
    handlers = logger.handlers
    if len(handlers) != 1 or logger.propagate or logger.filters:
        return None
    handler = handlers[0]
    if not isinstance(handler, BatchedLines) or handler.filters or handler.level > logging.INFO:
        return None
    formatter = handler.formatter
    if formatter is None or formatter._fmt != LINE_FORMAT or type(formatter) is not logging.Formatter:
        return None
    return handler


def _target(request: web.BaseRequest) -> str:
    """The path and query as the client sent them (the parser's own text: building them from
    the parsed URL cost a busy server more than the rest of the line); re-encoded when they hold
    anything that could be read as the end of the quoted field."""
    raw = request.raw_path
    return raw if raw.isprintable() and '"' not in raw else request.path_qs


_stamp = _Stamp()
_clock = time.time  # `time` is a parameter's name below


class AccessLog(AbstractAccessLogger):
    """One line per request: client, method and path, status, body bytes, seconds, and the word
    `aborted` when the answer did not go out whole. The status is the one whose head the client
    got (499 when it left before any answer began, as nginx logs it); the bytes are the body bytes
    that went out, sendfile's included, never the head's. aiohttp's own logger interprets a format
    string for every request, a tenth of a busy server's time; this one costs nothing when INFO is
    off. Headers (Authorization among them) are never logged."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        sent = request.get(TRANSFER_KEY)
        if sent is None:  # an answer aiohttp made before our route handlers ran (a refused message)
            body = 0 if request.method == "HEAD" else response.content_length or 0
            aborted = False
        else:
            body, aborted = sent.body_bytes, sent.aborted
        ending = " aborted" if aborted else ""
        message = f'{request.remote} "{request.method} {_target(request)}" {response.status} {body} {time:.6f}s{ending}'
        handler = _direct(self.logger)
        if handler is None:
            self.logger.info("%s", message)
        else:
            handler.add(f"{_stamp(_clock())} INFO {self.logger.name}: {message}")

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
