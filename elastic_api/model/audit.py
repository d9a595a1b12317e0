"""The audit trail: one entry per changing call of any dialect, as neutral values. What was asked
(dialect, method, route pattern), by whom (user and the kind of credentials), on what (the
object's ID), when, and how it ended. Never a body, a query or a credential: an entry says that
a key was added, not which key."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Credential(StrEnum):
    """How the caller proved who they are."""

    BASIC = "basic"  # HTTP Basic with the user's secret key (ElasticHosts)
    API_TOKEN = "api_token"  # a long-lived token made by the operator's command line
    LOGIN_TOKEN = "login_token"  # a signed, expiring token from a login


class Outcome(StrEnum):
    OK = "ok"  # done (a 1xx-3xx answer)
    REFUSED = "refused"  # the caller's mistake or a rule said no (4xx): nothing changed
    FAILED = "failed"  # ours (5xx): it may be partly done; the logs say why


def outcome_of(status: int) -> Outcome:
    if status < 400:
        return Outcome.OK
    return Outcome.REFUSED if status < 500 else Outcome.FAILED


@dataclass(frozen=True)
class Actor:
    """Who made a call: a user, how they signed in, and the group their token is confined to."""

    user: str
    credential: Credential
    group: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    actor: Actor
    dialect: str  # "elastichosts", "ecs"
    method: str
    route: str  # the route's pattern, e.g. /servers/{server}/start: never the raw path or query
    target: str | None  # the object's ID from the path, or the one the call made
    at: int  # ns since the epoch
    status: int
    id: int = 0  # given by the store

    @property
    def outcome(self) -> Outcome:
        return outcome_of(self.status)


@dataclass(frozen=True)
class AuditQuery:
    """Which of a user's entries to list: newest first, optionally only those about `target` (or
    made through one group's tokens);
    either `offset` entries skipped, or those older than the entry `before` (a marker)."""

    target: str | None = None
    offset: int = 0
    before: int | None = None
    limit: int | None = None
    group: str | None = None  # only the calls made by tokens confined to this group
