"""One exception tree; each class knows its HTTP status and X-Elastic-Error word."""
from __future__ import annotations


class ElasticError(Exception):
    """Base of every error the API answers with; the message is one line for the client."""

    status = 500
    word = "system"
    headers: dict[str, str] = {}

    def __init__(self, message: str) -> None:
        # A client sees exactly one line: newlines in a message would break text output.
        self.message = " ".join(message.split())
        super().__init__(self.message)


class UsageError(ElasticError):
    status, word = 400, "usage"


class TooLargeError(ElasticError):
    """A body or decompressed stream past its configured cap."""

    status, word = 413, "usage"


class SlowClientError(ElasticError):
    """A request body that stalled past body_timeout; the connection closes after the answer."""

    status, word = 408, "usage"


class AuthError(ElasticError):
    status, word = 401, "auth"


class BillingError(ElasticError):
    status, word = 402, "billing"


class MissingError(ElasticError):
    status, word = 404, "missing"


class MethodError(ElasticError):
    status, word = 405, "method"


class BusyError(ElasticError):
    status, word = 409, "busy"


class FailedError(ElasticError):
    """The command was valid but a backend (hypervisor, qemu tools) refused it."""

    status, word = 500, "failed"


class UnreachableError(FailedError):
    """A host the command needs cannot be reached (its libvirtd is down, or the network to it),
    and nothing was sent to it. 503, not 507: no host is full, and asking again later may work;
    the word stays `failed` (the command failed), as PROTOCOL.md's table has no other for it."""

    status = 503


class InternalError(ElasticError):
    status, word = 500, "system"


class FullError(ElasticError):
    status, word = 507, "full"


class UnavailableError(ElasticError):
    """Too much work in flight; the client should come back after Retry-After seconds."""

    status, word = 503, "busy"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}


class ConfigError(Exception):
    """The operator's configuration is wrong; raised at start-up, never over HTTP."""
