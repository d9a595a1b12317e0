"""API tokens: who a token-bearing request acts for, and the stored form of a token."""

from __future__ import annotations

from dataclasses import dataclass

from elastic_api.model.audit import Credential


@dataclass(frozen=True)
class Principal:
    """The caller a token names: a user, and the group (a Huawei sub-project) it is confined to,
    if any. Login tokens are never confined."""

    user: str
    group: str | None = None
    credential: Credential = Credential.API_TOKEN  # which kind of token (the audit trail says)


@dataclass(frozen=True)
class ApiToken:
    """A long-lived token as stored: its hash only (like a user's secret), with the first few
    characters kept so an operator can tell tokens apart in a list."""

    digest: bytes
    owner: str
    group: str | None
    created: int  # ns since the epoch
    hint: str
