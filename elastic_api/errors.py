"""One tree of neutral error kinds. They say what went wrong, never how a dialect answers it: each
dialect maps kinds to its status and body in one place (the ElasticHosts table is in
http/negotiate.py; ECS will have its own)."""
from __future__ import annotations


class Error(Exception):
    """Base of every error a client is answered with; the message is one line for the client."""

    def __init__(self, message: str) -> None:
        # A client sees exactly one line: newlines in a message would break text output.
        self.message = " ".join(message.split())
        super().__init__(self.message)


class Invalid(Error):
    """The input is wrong: an unknown key, a bad value, a malformed body."""


class TooLarge(Error):
    """A body or decompressed stream past its configured cap."""


class TooSlow(Error):
    """A request body that stalled or trickled past its deadline; the connection cannot be reused."""


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
AuthError = Unauthenticated
BillingError = QuotaExceeded
MissingError = NotFound
MethodError = MethodNotAllowed
BusyError = Busy
FailedError = Failed
InternalError = Internal
FullError = Full
UnavailableError = Unavailable
