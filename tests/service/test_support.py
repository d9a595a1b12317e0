"""Support plans and reservations on a real store: attach, replace, cancel, the immutable and
downgrade rules, reserved terms by id and by formula, chained terms, and the delete guard."""

from __future__ import annotations

import datetime as dt

import pytest

from elastic_api.errors import Busy, Invalid, NotFound
from elastic_api.model.catalogue import DEFAULT_PLANS
from elastic_api.model.support import (
    DAY_NS,
    DEFAULT_RESERVED_TERMS,
    DEFAULT_SUPPORT_PLANS,
    ReservedTerm,
    SupportPlan,
    add_months,
)
from elastic_api.service.support import SupportService

ALICE, BOB = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
SERVER = "33333333-3333-4333-8333-333333333333"
T0 = int(dt.datetime(2026, 1, 31, 12, tzinfo=dt.UTC).timestamp()) * 10**9
PLANS = (
    *DEFAULT_SUPPORT_PLANS,
    SupportPlan("locked", "Locked", 3, days=30, immutable=True),
    SupportPlan("premium", "Premium", 5, may_downgrade=False, monthly_price=99.5),
)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


@pytest.fixture
async def support(store):
    for user in (ALICE, BOB):
        await store.create_user(user, "u", b"h", 0)
    clock = Clock()
    service = SupportService(
        store, support_plans=PLANS, reserved_terms=DEFAULT_RESERVED_TERMS, plans=DEFAULT_PLANS, clock=clock
    )
    service.test_clock = clock  # type: ignore[attr-defined]
    return service


async def test_attach_replace_and_cancel(support):
    assert await support.support(ALICE, SERVER) is None
    basic = await support.attach(ALICE, SERVER, "basic")
    assert (basic.plan.code, basic.start, basic.end, basic.cancelled) == ("basic", T0, None, False)
    assert await support.support(ALICE, SERVER) == basic
    assert await support.support(BOB, SERVER) is None  # another user's: as if none
    support.test_clock.now += 10
    glob = await support.attach(ALICE, SERVER, "global")
    assert glob.plan.code == "global" and glob.start == T0 + 10
    support.test_clock.now += 10
    cancelled = await support.cancel(ALICE, SERVER)
    assert cancelled.cancelled and cancelled.cancelled_at == T0 + 20
    assert await support.support(ALICE, SERVER) == cancelled
    with pytest.raises(NotFound):
        await support.cancel(ALICE, SERVER)  # nothing left to cancel
    with pytest.raises(NotFound):
        await support.cancel(BOB, SERVER)
    assert (await support.attach(ALICE, SERVER, "basic")).cancelled is False  # a cancelled plan may be replaced


async def test_unknown_code(support):
    with pytest.raises(Invalid, match="^Support code not found$"):
        await support.attach(ALICE, SERVER, "platinum")


async def test_an_immutable_plan_binds_until_its_term_ends(support):
    locked = await support.attach(ALICE, SERVER, "locked")
    assert locked.end == T0 + 30 * DAY_NS
    for change in (lambda: support.attach(ALICE, SERVER, "basic"), lambda: support.cancel(ALICE, SERVER)):
        with pytest.raises(Invalid, match="^You cannot edit an immutable support plan$"):
            await change()
    support.test_clock.now = locked.end
    assert (await support.attach(ALICE, SERVER, "basic")).plan.code == "basic"


async def test_a_plan_that_may_not_be_downgraded(support):
    await support.attach(ALICE, SERVER, "premium")
    with pytest.raises(Invalid, match="may not be downgraded"):
        await support.attach(ALICE, SERVER, "basic")
    await support.cancel(ALICE, SERVER)  # cancelling is allowed, and then anything goes
    assert (await support.attach(ALICE, SERVER, "basic")).plan.code == "basic"


async def test_the_record_keeps_what_was_sold(support, store):
    record = await support.attach(ALICE, SERVER, "premium")
    assert record.plan.monthly_price == 99.5
    cheaper = SupportService(
        store,
        support_plans=(SupportPlan("premium", "Premium", 5, monthly_price=1.0),),
        reserved_terms=(),
        plans=DEFAULT_PLANS,
    )
    kept = await cheaper.support(ALICE, SERVER)
    assert kept is not None and kept.plan.monthly_price == 99.5


async def test_reserve_by_id_and_by_formula(support):
    assert await support.can_delete(SERVER)
    first = await support.reserve(ALICE, SERVER, "ECS2", 1)
    assert (first.term, first.months, first.plan, first.plan_name, first.discount) == (1, 3, 2, "ECS2", 0)
    # 31 January + 3 months = 30 April (the month's last day), same time of day.
    assert first.start == T0 and first.end == int(dt.datetime(2026, 4, 30, 12, tzinfo=dt.UTC).timestamp()) * 10**9
    second = await support.reserve(ALICE, SERVER, "ECS2", "M12PECS2")
    assert second.months == 12 and second.start == first.end  # terms chain
    assert second.end == add_months(first.end, 12)
    assert await support.reservations(ALICE, SERVER) == [first, second]
    assert await support.reservations(BOB, SERVER) == []
    assert await support.reserved_until(SERVER) == second.end
    assert not await support.can_delete(SERVER)
    assert not await support.can_delete(SERVER, first.end)  # the chained term still runs
    assert await support.can_delete(SERVER, second.end)
    with pytest.raises(Busy, match=r"cannot be deleted before its reservation ends \(2027-04-30T12:00:00\+00:00\)"):
        await support.ensure_deletable(SERVER)
    support.test_clock.now = second.end
    await support.ensure_deletable(SERVER)


@pytest.mark.parametrize("spec", ["M12", "12", "M12P", "m12pECS2", "M12PECS2 extra", "", "MxPECS2", "M1234PECS2"])
async def test_a_malformed_formula(support, spec):
    with pytest.raises(Invalid, match="^Invalid formula to define reserved plan"):
        await support.reserve(ALICE, SERVER, "ECS2", spec)


async def test_a_formula_for_another_plan(support):
    with pytest.raises(Invalid, match="^Invalid formula to define reserved plan: the server's plan is ECS2"):
        await support.reserve(ALICE, SERVER, "ECS2", "M12PECS6")


@pytest.mark.parametrize("spec", [99, 0, "M5PECS2", "M36PECS2"])
async def test_an_unknown_reserved_plan(support, spec):
    with pytest.raises(NotFound, match="^Reserved plan not found$"):
        await support.reserve(ALICE, SERVER, "ECS2", spec)
    assert await support.can_delete(SERVER)


async def test_terms_and_discounts_from_the_catalogue(store):
    await store.create_user(ALICE, "u", b"h", 0)
    service = SupportService(store, support_plans=(), reserved_terms=(ReservedTerm(7, 6, 15),), plans=DEFAULT_PLANS)
    record = await service.reserve(ALICE, SERVER, "ECS1", "M6PECS1")
    assert (record.term, record.discount, record.plan) == (7, 15, 1)
    with pytest.raises(Invalid, match="Support code not found"):
        await service.attach(ALICE, SERVER, "basic")  # an empty catalogue offers none
