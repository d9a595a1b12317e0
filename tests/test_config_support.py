"""The support and reserved catalogues and the audit settings in the config: defaults, what an
operator may set, and every mistake named."""

from __future__ import annotations

import pytest

from elastic_api.config import Config, load
from elastic_api.errors import ConfigError
from elastic_api.model.support import ReservedTerm, SupportPlan


def test_defaults():
    config = Config()
    assert [(p.code, p.weight, p.immutable, p.monthly_price) for p in config.support_plans] == [
        ("basic", 1, False, 0.0),
        ("global", 2, False, 0.0),
    ]
    assert [(t.id, t.months, t.discount) for t in config.reserved_plans] == [
        (1, 3, 0),
        (2, 6, 0),
        (3, 12, 0),
        (4, 24, 0),
    ]
    assert config.audit_retention == 90 * 86400 and config.audit_batch >= 1 and config.audit_queue >= config.audit_batch


def test_an_operators_catalogues(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "support_plans:\n"
        "  - {code: basic, title: Basic, weight: 1}\n"
        "  - {code: gold, title: Gold 24/7, weight: 9, days: 365, immutable: true, may_downgrade: false,"
        " monthly_price: 49.9}\n"
        "reserved_plans:\n  - {id: 10, months: 12, discount: 15}\n"
        "audit_retention: 0\naudit_batch: 50\naudit_queue: 10\naudit_flush_seconds: 1.5\n"
    )
    config = load(path)
    assert config.support_plans[1] == SupportPlan("gold", "Gold 24/7", 9, 365, True, False, 49.9)
    assert config.reserved_plans == (ReservedTerm(10, 12, 15),)
    audit = (config.audit_retention, config.audit_batch, config.audit_queue, config.audit_flush_seconds)
    assert audit == (0, 50, 10, 1.5)


@pytest.mark.parametrize(
    "text, word",
    [
        ("support_plans: basic\n", "support_plans must be a list"),
        ("support_plans: [basic]\n", "each support plan is a mapping"),
        ("support_plans: [{code: basic, colour: red}]\n", "unknown support plan key: colour"),
        ("support_plans: [{code: Basic}]\n", "support plan code"),
        ("support_plans: [{code: ''}]\n", "support plan code"),
        ("support_plans: [{code: a, weight: -1}]\n", "support plan a: weight"),
        ("support_plans: [{code: a, weight: x}]\n", "support plan a: weight"),
        ("support_plans: [{code: a, days: 1.5}]\n", "support plan a: days"),
        ("support_plans: [{code: a, immutable: 'yes'}]\n", "support plan a: immutable"),
        ("support_plans: [{code: a, may_downgrade: 1}]\n", "support plan a: may_downgrade"),
        ("support_plans: [{code: a, monthly_price: -1}]\n", "support plan a: monthly_price"),
        ("support_plans: [{code: a, monthly_price: .nan}]\n", "support plan a: monthly_price"),
        ("support_plans: [{code: a}, {code: a}]\n", "codes must be unique"),
        ("reserved_plans: {}\n", "reserved_plans must be a list"),
        ("reserved_plans: [{id: 1}]\n", "months"),
        ("reserved_plans: [{id: 0, months: 3}]\n", "id"),
        ("reserved_plans: [{id: 1, months: 0}]\n", "months"),
        ("reserved_plans: [{id: 1, months: 3, discount: 101}]\n", "discount"),
        ("reserved_plans: [{id: 1, months: 3, price: 1}]\n", "unknown reserved plan key: price"),
        ("reserved_plans: [{id: 1, months: 3}, {id: 1, months: 6}]\n", "unique"),
        ("reserved_plans: [{id: 1, months: 3}, {id: 2, months: 3}]\n", "unique"),
        ("audit_retention: 30\n", "audit_retention"),
        ("audit_retention: -1\n", "audit_retention"),
        ("audit_batch: 0\n", "audit_batch"),
        ("audit_queue: 0\n", "audit_queue"),
        ("audit_flush_seconds: -1\n", "audit_flush_seconds"),
        ("audit_flush_seconds: 61\n", "audit_flush_seconds"),
        ("audit_flush_seconds: soon\n", "audit_flush_seconds"),
    ],
)
def test_mistakes_are_named(tmp_path, text, word):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=word):
        load(path)
