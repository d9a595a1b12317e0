"""Servers' support plans and reservations, priced from the operator's catalogues. Every method
takes the engine's server UUID of a server the caller owns (the dialect resolves its own names
and answers 404 for a server that is not the caller's); no payment is taken."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from elastic_api.errors import Busy, Invalid, NotFound
from elastic_api.model.catalogue import Plan
from elastic_api.model.support import (
    ReservedRecord,
    ReservedTerm,
    SupportPlan,
    SupportRecord,
    check_support_change,
    new_support,
    parse_formula,
    support_plan,
)
from elastic_api.store.base import SupportStore

# Concurrent changes to one server's support that make a compare-and-set lose this many times
# in a row are a client racing itself: it is told to try again (409).
ATTEMPTS = 3
FORMULA_HELP = "Invalid formula to define reserved plan: give M{months}P{plan}, e.g. M12PECS1, or a reserved plan id"


class SupportService:
    def __init__(
        self,
        store: SupportStore,
        *,
        support_plans: tuple[SupportPlan, ...],
        reserved_terms: tuple[ReservedTerm, ...],
        plans: tuple[Plan, ...],
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.store = store
        self.support_plans = support_plans
        self.reserved_terms = reserved_terms
        self.plans = plans
        self.clock = clock

    # -- support ------------------------------------------------------------------------------
    async def support(self, user: str, server: str) -> SupportRecord | None:
        return await self.store.get_support(user, server)

    async def attach(self, user: str, server: str, code: str) -> SupportRecord:
        """Give the server the support plan `code`, replacing its current one (400 for an
        unknown code, or while an immutable plan's term runs)."""
        plan = support_plan(self.support_plans, code.strip())
        if plan is None:
            raise Invalid("Support code not found")
        for _ in range(ATTEMPTS):
            current = await self.store.get_support(user, server)
            now = self.clock()
            check_support_change(current, plan, now)
            record = new_support(server, user, plan, now)
            if await self.store.replace_support(record, current):
                return record
        raise Busy("the server's support plan is being changed by another call: try again")

    async def cancel(self, user: str, server: str) -> SupportRecord:
        """Cancel the server's support (404 when it has none; 400 while an immutable term runs)."""
        for _ in range(ATTEMPTS):
            current = await self.store.get_support(user, server)
            if current is None or current.cancelled:
                raise NotFound("this server has no support plan")
            now = self.clock()
            check_support_change(current, None, now)
            done = await self.store.cancel_support(user, server, current, now)
            if done is not None:
                return done
        raise Busy("the server's support plan is being changed by another call: try again")

    # -- reservations -------------------------------------------------------------------------
    def term(self, reserved_plan: str | int, server_plan: str) -> ReservedTerm:
        """The catalogue term a request names: an id, or `M{months}P{plan}` whose plan must be
        the server's (400 for a malformed formula or another plan, 404 for an unknown term)."""
        if isinstance(reserved_plan, int):
            found = next((t for t in self.reserved_terms if t.id == reserved_plan), None)
        else:
            parsed = parse_formula(reserved_plan)
            if parsed is None:
                raise Invalid(FORMULA_HELP)
            months, plan = parsed
            if plan != server_plan:
                raise Invalid(
                    f"Invalid formula to define reserved plan: the server's plan is {server_plan}, not {plan}"
                )
            found = next((t for t in self.reserved_terms if t.months == months), None)
        if found is None:
            raise NotFound("Reserved plan not found")
        return found

    async def reserve(self, user: str, server: str, server_plan: str, reserved_plan: str | int) -> ReservedRecord:
        """Reserve the server on its plan for a term of the catalogue, from now or from the end of
        its current reservation."""
        term = self.term(reserved_plan, server_plan)
        plan = next((p for p in self.plans if p.name == server_plan), None)
        if plan is None:  # the plan left the catalogue since the server was made
            raise NotFound("Reserved plan not found")
        return await self.store.insert_reservation(user, server, term, (plan.id, plan.name), self.clock())

    async def reservations(self, user: str, server: str) -> list[ReservedRecord]:
        return await self.store.reservations(user, server)

    async def can_delete(self, server: str, now: int | None = None) -> bool:
        """False while a reservation of the server runs (or one is chained after it): a reserved
        server cannot be deleted before its period ends (the ECS delete answers 409)."""
        until = await self.store.reserved_until(server)
        return until is None or (self.clock() if now is None else now) >= until

    async def ensure_deletable(self, server: str) -> None:
        """Busy (the ECS delete's 409) while a reservation of the server runs."""
        until = await self.store.reserved_until(server)
        if until is not None and self.clock() < until:
            when = dt.datetime.fromtimestamp(until // 10**9, dt.UTC).isoformat()
            raise Busy(f"a reserved server cannot be deleted before its reservation ends ({when})")

    async def reserved_until(self, server: str) -> int | None:
        return await self.store.reserved_until(server)
