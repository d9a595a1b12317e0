"""Golden renderings of the audit entry, ServerSupport and the Reserved record, each also read
back by ecsapi 0.4.0's own pydantic models (ServerSupport, DiscountRecord)."""

from __future__ import annotations

import datetime as dt
import os

os.environ["ECSAPI_ENV_FILE"] = "/dev/null"

from ecsapi._discount_record import DiscountRecord  # noqa: E402
from ecsapi._server_support import ServerSupport  # noqa: E402

from elastic_api.api.ecs import records  # noqa: E402
from elastic_api.model.audit import Actor, AuditEntry, Credential  # noqa: E402
from elastic_api.model.support import ReservedRecord, SupportPlan, SupportRecord  # noqa: E402

USER = "11111111-1111-4111-8111-111111111111"
SERVER = "33333333-3333-4333-8333-333333333333"
T0 = int(dt.datetime(2026, 1, 31, 12, 0, 5, tzinfo=dt.UTC).timestamp()) * 10**9 + 543_255_000
T1 = T0 + 86_400 * 10**9


def test_a_log_entry():
    entry = AuditEntry(
        Actor(USER, Credential.LOGIN_TOKEN, "eg100001"), "ecs", "DELETE", "/sshkeys/{id}", "7", T0, 404, id=12
    )
    assert records.log_entry(entry) == {
        "id": 12,
        "actor": USER,
        "actor_type": "login_token",
        "group": "eg100001",
        "action": "DELETE /sshkeys/{id}",
        "method": "DELETE",
        "route": "/sshkeys/{id}",
        "dialect": "ecs",
        "target": "7",
        "status": "refused",
        "status_code": 404,
        "severity": "warning",
        "created_at": "2026-01-31T12:00:05.543255+00:00",
    }
    failed = AuditEntry(Actor(USER, Credential.BASIC), "elastichosts", "POST", "/drives/create", None, T0, 500, id=1)
    assert {k: records.log_entry(failed)[k] for k in ("status", "severity", "target", "group", "actor_type")} == {
        "status": "failed",
        "severity": "error",
        "target": None,
        "group": None,
        "actor_type": "basic",
    }


def test_server_support():
    plan = SupportPlan("global", "Global", 2, days=1, immutable=True, may_downgrade=False, monthly_price=12.5)
    wire = records.server_support(SupportRecord(SERVER, USER, plan, T0, T1), "ec200016", "web")
    assert wire == {
        "server__name": "ec200016",
        "server_notes": "web",
        "support_title": "Global",
        "support_code": "global",
        "immutable": True,
        "start": "2026-01-31T12:00:05.543255+00:00",
        "end": "2026-02-01T12:00:05.543255+00:00",
        "may_downgrade": False,
        "weigth": 2,
        "days": 1,
        "cancelled": False,
        "cancelled_at": None,
        "monthly_price": 12.5,
    }
    parsed = ServerSupport.model_validate(wire)
    assert (parsed.server_name, parsed.weight, parsed.end, parsed.cancelled_at) == (
        "ec200016",
        2,
        dt.datetime(2026, 2, 1, 12, 0, 5, 543255, tzinfo=dt.UTC),
        None,
    )
    open_ended = records.server_support(
        SupportRecord(SERVER, USER, SupportPlan("basic", "Basic", 1), T0, None, cancelled_at=T1), "ec200016", ""
    )
    assert (open_ended["end"], open_ended["cancelled"], open_ended["cancelled_at"]) == (
        None,
        True,
        "2026-02-01T12:00:05.543255+00:00",
    )
    assert ServerSupport.model_validate(open_ended).cancelled


def test_the_reserved_record():
    record = ReservedRecord(3, SERVER, USER, 4, 24, 6, "ECS6", 20, T0, T1)
    wire = records.reserved(record, "ec200016")
    assert wire == {
        "reserved_plan": 4,
        "reserved_months": 24,
        "reserved_month": 24,
        "plan": 6,
        "plan_name": "ECS6",
        "discount": 20,
        "start_date": "2026-01-31T12:00:05.543255+00:00",
        "end_date": "2026-02-01T12:00:05.543255+00:00",
        "server": "ec200016",
    }
    parsed = DiscountRecord.model_validate(wire)
    assert (parsed.reserved_plan, parsed.reserved_months, parsed.plan, parsed.server) == (4, 24, 6, "ec200016")


def test_a_servers_reservation_fields():
    first = ReservedRecord(1, SERVER, USER, 1, 3, 1, "ECS1", 0, T0, T1)
    later = ReservedRecord(2, SERVER, USER, 1, 3, 1, "ECS1", 0, T1, T1 + 10)
    assert records.reserved_fields([], "ec1", T0) == {"reserved_plans": [], "is_reserved": False, "reserved_until": ""}
    running = records.reserved_fields([first, later], "ec1", T0 + 1)
    assert running["is_reserved"] and running["reserved_until"] == records.reserved(later, "ec1")["end_date"]
    assert len(running["reserved_plans"]) == 2
    over = records.reserved_fields([first, later], "ec1", T1 + 10)
    assert (over["is_reserved"], over["reserved_until"]) == (False, "")
