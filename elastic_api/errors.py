"""One tree of neutral error kinds. They say what went wrong, never how a dialect answers it: each
dialect maps kinds to its status and body in one place (the ElasticHosts table is in
http/negotiate.py; ECS will have its own)."""

from __future__ import annotations

import re

# Control characters a message may quote from a request (a path segment, a key): written as
# \xNN so an error line never carries one raw (ESC sequences, NUL, a CR that forges a line).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


class Error(Exception):
    """Base of every error a client is answered with; the message is one line for the client."""

    def __init__(self, message: str) -> None:
        # A client sees exactly one line: newlines in a message would break text output.
        self.message = _CONTROL.sub(_escaped, " ".join(message.split()))
        super().__init__(self.message)


class Invalid(Error):
    """The input is wrong: an unknown key, a bad value, a malformed body."""


class TooLarge(Error):
    """A body or decompressed stream past its configured cap."""


class TooSlow(Error):
    """A request body that stalled or trickled past its deadline; the connection cannot be reused."""


class ClientGone(Error):
    """The client closed its connection while its request was being served; nobody reads the
    answer, which is for the access log alone."""


class Unauthenticated(Error):
    """Credentials missing or wrong."""


class QuotaExceeded(Error):
    """The user's quota does not cover the command."""


class NotFound(Error):
    """No such object, command or route, or one the caller may not see (never told apart)."""


class MethodNotAllowed(Error):
    """The route exists, but not for this method."""


class Busy(Error):
    """The object is in use: claimed, being imaged, running when it must be stopped."""


class Failed(Error):
    """The command was valid but a backend (hypervisor, qemu tools) refused it."""


class Unreachable(Failed):
    """A host the command needs cannot be reached (its libvirtd is down, or the network to it),
    and nothing was sent to it: no host is full, and asking again later may work."""


class Internal(Error):
    """A fault of ours; the details are logged, never answered."""


class Full(Error):
    """No room: past a drive's end, or a pool, disk or database without space."""


class Unavailable(Error):
    """Too much work in flight; the client should come back after retry_after seconds."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConfigError(Exception):
    """The operator's configuration is wrong; raised at start-up, never over HTTP."""


# The names the code grew up with; new code uses the kinds above.
ElasticError = Error
UsageError = Invalid
TooLargeError = TooLarge
SlowClientError = TooSlow
ClientGoneError = ClientGone
AuthError = Unauthenticated
BillingError = QuotaExceeded
MissingError = NotFound
MethodError = MethodNotAllowed
BusyError = Busy
FailedError = Failed
UnreachableError = Unreachable
InternalError = Internal
FullError = Full
UnavailableError = Unavailable
