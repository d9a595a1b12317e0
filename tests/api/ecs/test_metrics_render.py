"""The ECS metrics shape (ECS.md §4 "Metrics"): golden output of the pure renderer."""

from __future__ import annotations

import json

from elastic_api.api.ecs.metrics import point_time, render
from elastic_api.model.metrics import MetricPoint

GOLDEN = {
    "metrics": {
        "resource": "ec000123",
        "core": [{"t": "2025-02-20 13:00:00", "y": "12.35"}, {"t": "2025-02-20 13:05:00", "y": "100.00"}],
        "disk": {
            "reads": [{"t": "2025-02-20 13:00:00", "y": "0.00"}, {"t": "2025-02-20 13:05:00", "y": "1024.50"}],
            "writes": [{"t": "2025-02-20 13:00:00", "y": "3.00"}, {"t": "2025-02-20 13:05:00", "y": "0.01"}],
        },
        "network": {
            "received": [{"t": "2025-02-20 13:00:00", "y": "7.13"}, {"t": "2025-02-20 13:05:00", "y": "0.00"}],
            "transmitted": [{"t": "2025-02-20 13:00:00", "y": "0.50"}, {"t": "2025-02-20 13:05:00", "y": "123456.79"}],
        },
    }
}


def test_golden():
    at = 1740056400  # 2025-02-20 13:00:00 UTC
    points = [
        MetricPoint(at + 0.9, 12.345, 0.0, 3.0, 7.126, 0.5),
        MetricPoint(at + 300, 100.0, 1024.5, 0.005, 0.0, 123456.789),
    ]
    rendered = render("ec000123", points)
    assert rendered == GOLDEN
    json.dumps(rendered)  # plain JSON all the way down


def test_no_points_is_empty_series_not_missing_keys():
    assert render("ec000001", []) == {
        "metrics": {
            "resource": "ec000001",
            "core": [],
            "disk": {"reads": [], "writes": []},
            "network": {"received": [], "transmitted": []},
        }
    }


def test_point_time_is_utc_without_zone():
    assert point_time(0) == "1970-01-01 00:00:00"
    assert point_time(1740056399.999) == "2025-02-20 12:59:59"
