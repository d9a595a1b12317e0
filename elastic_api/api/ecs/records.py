"""Typed records → the ECS wire objects of the audit trail (/logs), a server's support plan
(ServerSupport, ecsapi's shape) and its reservations (the Reserved record). Pure functions; the
server's ECS name and notes come from the caller, since the records know the engine's UUID only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from elastic_api.api.ecs.codec import timestamp
from elastic_api.model.audit import AuditEntry, Outcome
from elastic_api.model.support import ReservedRecord, SupportRecord

Wire = dict[str, Any]
SEVERITY = {Outcome.OK: "info", Outcome.REFUSED: "warning", Outcome.FAILED: "error"}


def log_entry(e: AuditEntry) -> Wire:
    """One call of the audit trail: who (`actor` = user UUID, `actor_type` = how they signed in,
    `group` = the group their token is confined to), what (`action` = method and route pattern,
    also apart, and the `dialect`), on what (`target`), when, and how it ended (`status` ok /
    refused / failed, `status_code` the HTTP status, `severity` info / warning / error)."""
    return {
        "id": e.id,
        "actor": e.actor.user,
        "actor_type": e.actor.credential.value,
        "group": e.actor.group,
        "action": f"{e.method} {e.route}",
        "method": e.method,
        "route": e.route,
        "dialect": e.dialect,
        "target": e.target,
        "status": e.outcome.value,
        "status_code": e.status,
        "severity": SEVERITY[e.outcome],
        "created_at": timestamp(e.at),
    }


def _time(ns: int | None) -> str | None:
    return None if ns is None else timestamp(ns)


def server_support(record: SupportRecord, server_name: str, server_notes: str) -> Wire:
    """ServerSupport as ecsapi reads it (`server__name` and `weigth` sic: its field aliases)."""
    plan = record.plan
    return {
        "server__name": server_name,
        "server_notes": server_notes,
        "support_title": plan.title,
        "support_code": plan.code,
        "immutable": plan.immutable,
        "start": timestamp(record.start),
        "end": _time(record.end),
        "may_downgrade": plan.may_downgrade,
        "weigth": plan.weight,
        "days": plan.days,
        "cancelled": record.cancelled,
        "cancelled_at": _time(record.cancelled_at),
        "monthly_price": plan.monthly_price,
    }


def reserved(record: ReservedRecord, server_name: str) -> Wire:
    """The Reserved record (ecsapi's DiscountRecord): `reserved_months` as ecsapi reads it and
    `reserved_month` as Seeweb's docs print it, both sent (ECS.md §7)."""
    return {
        "reserved_plan": record.term,
        "reserved_months": record.months,
        "reserved_month": record.months,
        "plan": record.plan,
        "plan_name": record.plan_name,
        "discount": record.discount,
        "start_date": timestamp(record.start),
        "end_date": timestamp(record.end),
        "server": server_name,
    }


def reserved_fields(records: Sequence[ReservedRecord], server_name: str, now: int) -> Wire:
    """A Server's reservation fields: every record, whether one runs now, and until when the
    server is reserved (`""` when it is not: ecsapi rejects null there)."""
    until = max((r.end for r in records), default=0)
    running = until > now  # a term chained after the current one counts: the server stays reserved
    return {
        "reserved_plans": [reserved(r, server_name) for r in records],
        "is_reserved": running,
        "reserved_until": timestamp(until) if running else "",
    }
