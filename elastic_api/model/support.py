"""Support plans and reserved terms: the operator's catalogues (from the config) and the records
of what a server holds. No payment is taken here: these are the records a billing system reads.
Pure values and rules; times are ns since the epoch."""

from __future__ import annotations

import calendar
import datetime as dt
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from elastic_api.errors import ConfigError, Invalid

_CODE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# `M{months}P{plan}`, e.g. M12PECS1: a term of the catalogue and the server's plan by name.
FORMULA = re.compile(r"^M([0-9]{1,3})P([A-Za-z0-9][A-Za-z0-9_-]{0,31})$")
DAY_NS = 86_400 * 10**9


@dataclass(frozen=True)
class SupportPlan:
    """A level of support a server may have. `weight` orders levels (a downgrade is to a lower
    one); `days` is the least term, from the start (0: none, cancel any time); an `immutable`
    plan can be neither changed nor cancelled until that term ends."""

    code: str
    title: str
    weight: int
    days: int = 0
    immutable: bool = False
    may_downgrade: bool = True
    monthly_price: float = 0.0


@dataclass(frozen=True)
class ReservedTerm:
    """A reservation length the operator offers, and its discount (percent off the plan's price)."""

    id: int
    months: int
    discount: int = 0


# Seeweb's two codes; free, cancellable, and ordered basic < global.
DEFAULT_SUPPORT_PLANS: tuple[SupportPlan, ...] = (
    SupportPlan("basic", "Basic", 1),
    SupportPlan("global", "Global", 2),
)
# The lengths Seeweb names (3, 6, 12 in its text; 24 in its example); no discount unless configured.
DEFAULT_RESERVED_TERMS: tuple[ReservedTerm, ...] = (
    ReservedTerm(1, 3),
    ReservedTerm(2, 6),
    ReservedTerm(3, 12),
    ReservedTerm(4, 24),
)


@dataclass(frozen=True)
class SupportRecord:
    """A server's support: the plan as it was when attached (a later catalogue change does not
    rewrite what was sold), when it started, when its least term ends, and whether it was cancelled."""

    server: str  # the engine's server UUID
    owner: str
    plan: SupportPlan
    start: int
    end: int | None  # start + days; None without a least term
    cancelled_at: int | None = None

    @property
    def cancelled(self) -> bool:
        return self.cancelled_at is not None

    def binding(self, now: int) -> bool:
        """Whether the plan is immutable and its term still runs: then nobody may change it."""
        return self.plan.immutable and not self.cancelled and (self.end is None or now < self.end)


@dataclass(frozen=True)
class ReservedRecord:
    id: int
    server: str  # the engine's server UUID
    owner: str
    term: int  # the ReservedTerm's id
    months: int
    plan: int  # the server plan's id
    plan_name: str
    discount: int
    start: int
    end: int

    def running(self, now: int) -> bool:
        return now < self.end


def add_months(ns: int, months: int) -> int:
    """The same time of day `months` calendar months later (UTC), on the same day of the month or
    the month's last day (31 January + 1 month = 28 or 29 February)."""
    start = dt.datetime.fromtimestamp(ns // 10**9, dt.UTC)
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    moved = start.replace(year=year, month=month, day=day)
    return int(moved.timestamp()) * 10**9 + ns % 10**9


def new_support(server: str, owner: str, plan: SupportPlan, now: int) -> SupportRecord:
    return SupportRecord(server, owner, plan, now, now + plan.days * DAY_NS if plan.days else None)


def check_support_change(current: SupportRecord | None, wanted: SupportPlan | None, now: int) -> None:
    """Invalid unless the server's support may become `wanted` (None: cancelled) now."""
    if current is None or current.cancelled:
        return
    if current.binding(now):
        raise Invalid("You cannot edit an immutable support plan")
    if wanted is not None and wanted.weight < current.plan.weight and not current.plan.may_downgrade:
        raise Invalid(f"support plan {current.plan.code} may not be downgraded to {wanted.code}")


def parse_formula(text: str) -> tuple[int, str] | None:
    """(months, plan name) from `M{months}P{plan}`; None when the text is not such a formula."""
    found = FORMULA.match(text.strip())
    return (int(found.group(1)), found.group(2)) if found else None


# -- config parsing -----------------------------------------------------------------------------
def _mapping(item: Any, what: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise ConfigError(f"each {what} is a mapping: {item!r}")
    unknown = set(item) - keys
    if unknown:
        raise ConfigError(f"unknown {what} key: {sorted(unknown)[0]}")
    return item


def _whole(item: dict[str, Any], key: str, what: str, low: int, high: int, default: int | None = None) -> int:
    raw = item.get(key, default)
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
        raise ConfigError(f"{what}: {key} must be a whole number from {low} to {high}")
    return raw


def _flag(item: dict[str, Any], key: str, what: str, default: bool) -> bool:
    raw = item.get(key, default)
    if not isinstance(raw, bool):
        raise ConfigError(f"{what}: {key} must be true or false")
    return raw


_SUPPORT_KEYS = {"code", "title", "weight", "days", "immutable", "may_downgrade", "monthly_price"}


def parse_support_plans(value: Any) -> tuple[SupportPlan, ...]:
    """The `support_plans:` list; it replaces the default catalogue whole (an empty list offers none)."""
    if not isinstance(value, list):
        raise ConfigError("support_plans must be a list of {code, title, weight, days, ...}")
    plans = []
    for item in value:
        item = _mapping(item, "support plan", _SUPPORT_KEYS)
        code = str(item.get("code", ""))
        if not _CODE.match(code):
            raise ConfigError(
                f"support plan code must be 1 to 32 of a-z, 0-9, '_' and '-', starting with a letter: {code!r}"
            )
        what = f"support plan {code}"
        price = item.get("monthly_price", 0)
        if isinstance(price, bool) or not isinstance(price, (int, float)) or price < 0 or not math.isfinite(price):
            raise ConfigError(f"{what}: monthly_price must be a number of 0 or more")
        plans.append(
            SupportPlan(
                code,
                str(item.get("title", code)),
                _whole(item, "weight", what, 0, 1000, 0),
                _whole(item, "days", what, 0, 36_500, 0),
                _flag(item, "immutable", what, False),
                _flag(item, "may_downgrade", what, True),
                float(price),
            )
        )
    if len({p.code for p in plans}) != len(plans):
        raise ConfigError("support plan codes must be unique")
    return tuple(plans)


def parse_reserved_terms(value: Any) -> tuple[ReservedTerm, ...]:
    """The `reserved_plans:` list of {id, months, discount}; ids and lengths unique."""
    if not isinstance(value, list):
        raise ConfigError("reserved_plans must be a list of {id, months, discount}")
    terms = []
    for item in value:
        item = _mapping(item, "reserved plan", {"id", "months", "discount"})
        what = f"reserved plan {item.get('id')!r}"
        terms.append(
            ReservedTerm(
                _whole(item, "id", what, 1, 2**31 - 1),
                _whole(item, "months", what, 1, 120),
                _whole(item, "discount", what, 0, 100, 0),
            )
        )
    if len({t.id for t in terms}) != len(terms) or len({t.months for t in terms}) != len(terms):
        raise ConfigError("reserved plan ids and months must be unique")
    return tuple(terms)


def support_plan(plans: Sequence[SupportPlan], code: str) -> SupportPlan | None:
    return next((p for p in plans if p.code == code), None)
