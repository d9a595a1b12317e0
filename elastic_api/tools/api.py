"""The tools' HTTP client: $EHURI and $EHAUTH, Basic auth, and retries with backoff."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

USER_AGENT = "elastic-api-tools/0.1"
# A server that has not accepted the connection by then is down, not slow.
CONNECT_TIMEOUT = 30.0
# Statuses that mean "busy or briefly down, ask again": the ones a retry can change. 507 (full) and
# 501/505 (never going to work) are left out, as is every other 4xx: a usage error stays one.
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# Statuses that say the server did not act on the request, so even a create may be sent again.
NOT_ACTED_STATUS = frozenset({429, 503})


class ToolError(Exception):
    """A failure the tool reports as one line on stderr."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        return self.message


class SetupError(ToolError):
    """The environment or the arguments are wrong: nothing was sent."""


class TransportError(ToolError):
    """The request got no HTTP answer: refused, reset, timed out, truncated."""


class ApiError(ToolError):
    """The server answered with an error status."""

    def __init__(self, status: int, word: str, text: str, what: str = "") -> None:
        self.status, self.word, self.text = status, word, text
        said = f"{status} {word}" if word else f"{status}"
        super().__init__((f"{what}: " if what else "") + (f"{said}: {text}" if text else said))


@dataclass(frozen=True)
class Endpoint:
    """Where the API is and who we are: `$EHURI` and `$EHAUTH` (`<user uuid>:<secret>`)."""

    base: str
    user: str
    secret: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Endpoint:
        uri = environ.get("EHURI", "").strip()
        auth = environ.get("EHAUTH", "").strip()
        if not uri:
            raise SetupError("EHURI is not set: export EHURI=https://api.example.com/")
        if not uri.startswith(("http://", "https://")):
            raise SetupError(f"EHURI must be an http:// or https:// URI, not {uri[:80]!r}")
        if not auth:
            raise SetupError("EHAUTH is not set: export EHAUTH=<user uuid>:<secret API key>")
        user, colon, secret = auth.partition(":")
        if not colon or not user or not secret:
            raise SetupError("EHAUTH must be <user uuid>:<secret API key>")
        return cls(uri.rstrip("/"), user, secret)

    def authorization(self) -> str:
        token = base64.b64encode(f"{self.user}:{self.secret}".encode()).decode("ascii")
        return f"Basic {token}"

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a transient failure is tried again."""

    retries: int = 8
    # Doubles per attempt up to max_delay: 0.5 s … 30 s, about two minutes in all with 8 retries.
    base_delay: float = 0.5
    max_delay: float = 30.0
    # A server asking for longer than this is effectively down; cap the wait, the count still ends it.
    max_retry_after: float = 300.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            # A little jitter so parallel chunks told the same Retry-After do not return in one burst.
            return min(retry_after, self.max_retry_after) + random.uniform(0, self.base_delay / 2)
        backoff = min(self.max_delay, self.base_delay * 2.0 ** min(attempt, 32))
        return backoff / 2 + random.uniform(0, backoff / 2)


@dataclass
class Reply:
    method: str
    url: str
    status: int
    reason: str
    version: str
    request_headers: CIMultiDictProxy[str]
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error(self, what: str = "") -> ApiError:
        text = self.body.decode("utf-8", "replace").strip()
        line = next((ln.strip() for ln in text.splitlines() if ln.strip()), self.reason or "")
        return ApiError(self.status, self.headers.get("X-Elastic-Error", "").strip(), line[:300], what)

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise ToolError(f"{self.url}: the server did not answer JSON") from None


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date."""
    value = headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def retriable(status: int, idempotent: bool) -> bool:
    return status in (RETRY_STATUS if idempotent else NOT_ACTED_STATUS)


class Api:
    """One session against $EHURI; `call` retries transient failures with backoff."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        parallel: int = 1,
        timeout: float = 300.0,
        policy: RetryPolicy | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.parallel = parallel
        self.timeout = timeout
        self.policy = policy or RetryPolicy()
        self.warn = warn or (lambda message: None)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Api:
        self._session = aiohttp.ClientSession(
            # One connection per chunk in flight, plus one for a checksum or info on the side.
            connector=aiohttp.TCPConnector(limit=self.parallel + 1),
            timeout=aiohttp.ClientTimeout(total=self.timeout, sock_connect=CONNECT_TIMEOUT),
            headers={"User-Agent": USER_AGENT, "Authorization": self.endpoint.authorization()},
            # Like curl under the original tools: honour http_proxy, https_proxy and no_proxy.
            trust_env=True,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def once(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> Reply:
        """One request, no retries; connection failures raise aiohttp's own errors."""
        assert self._session is not None, "use Api as an async context manager"
        # No redirects: a POST body would not follow, and the secret must not go to another host.
        async with self._session.request(
            method, self.endpoint.url(path), data=body, allow_redirects=False, headers=dict(headers or {})
        ) as response:
            data = await response.read()
            version = f"HTTP/{response.version.major}.{response.version.minor}" if response.version else "HTTP/1.1"
            return Reply(
                method,
                str(response.url),
                response.status,
                response.reason or "",
                version,
                response.request_info.headers,
                response.headers,
                data,
            )

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
        length: int | None = None,
        what: str = "",
    ) -> Reply:
        """A request that must succeed (2xx), tried again on transient failures.

        `idempotent` says sending it twice is harmless (reads, writes at an offset); a create is
        not, so it is sent again only when the server surely did not act on it. `length` is the
        body size a 2xx must have: a shorter one was cut off on the way and is fetched again.
        """
        what = what or f"{method} {path}"
        attempt = 0
        while True:
            wait: float | None = None
            failure: ToolError
            try:
                reply = await self.once(method, path, body, headers)
            except aiohttp.ClientSSLError as e:
                raise TransportError(f"{what}: TLS failed: {e}") from None
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as e:
                # The connection never opened, so the request was never sent: always safe to retry.
                failure = TransportError(f"{what}: cannot connect to {self.endpoint.base}: {reason(e)}")
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as e:
                failure = TransportError(f"{what}: {reason(e)}")
                if not idempotent:
                    raise failure from None
            except aiohttp.ClientError as e:
                raise TransportError(f"{what}: {reason(e)}") from None
            else:
                if reply.ok:
                    if length is None or len(reply.body) == length:
                        return reply
                    failure = TransportError(f"{what}: got {len(reply.body)} of {length} bytes")
                else:
                    failure = reply.error(what)
                    if not retriable(reply.status, idempotent):
                        raise failure
                    wait = retry_after(reply.headers)
            if attempt >= self.policy.retries:
                if self.policy.retries:
                    failure.message += f" (gave up after {self.policy.retries} retries)"
                raise failure
            delay = self.policy.delay(attempt, wait)
            attempt += 1
            self.warn(f"{failure.message}; retry {attempt} of {self.policy.retries} in {delay:.1f}s")
            await asyncio.sleep(delay)

    async def json(
        self, method: str, path: str, props: Mapping[str, Any] | None = None, *, idempotent: bool = True
    ) -> Any:
        """A command with JSON in (when given) and out."""
        headers = {"Accept": "application/json"}
        body = None
        if props is not None:
            headers["Content-Type"] = "application/json"
            body = json.dumps(props).encode()
        return (await self.call(method, path, body=body, headers=headers, idempotent=idempotent)).json()

    async def drive_info(self, drive: str) -> dict[str, Any]:
        info = await self.json("GET", f"/drives/{drive}/info")
        if not isinstance(info, dict) or not isinstance(info.get("size"), int):
            raise ToolError(f"drive {drive}: the server's info has no size")
        return info


def reason(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, aiohttp.ClientConnectorError):
        # asyncio words a refusal as "Connect call failed (...)"; the errno says it plainly.
        number = error.os_error.errno
        return os.strerror(number) if number else str(error.os_error)
    return str(error) or type(error).__name__
