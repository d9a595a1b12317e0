"""A server's metrics in the ECS shape (ECS.md §4 "Metrics"): the bare `{"metrics": {...}}` with
`core` (% of the server's vCPUs busy), disk `reads`/`writes` and network `received`/`transmitted`
(KiB/s), each a list of points `{"t": "YYYY-MM-DD HH:MM:SS" (UTC, no zone), "y": "0.00"}`. Pure."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from elastic_api.model.metrics import MetricPoint

Wire = dict[str, Any]


def point_time(at: float) -> str:
    """The seed's time: UTC, to the second, without a zone."""
    return dt.datetime.fromtimestamp(int(at), dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _series(points: Sequence[MetricPoint], value: Callable[[MetricPoint], float]) -> list[Wire]:
    return [{"t": point_time(point.at), "y": f"{value(point):.2f}"} for point in points]


def render(name: str, points: Sequence[MetricPoint]) -> Wire:
    """The answer to GET /servers/{name}/metrics for the server named `name`."""
    return {
        "metrics": {
            "resource": name,
            "core": _series(points, lambda p: p.cpu_percent),
            "disk": {
                "reads": _series(points, lambda p: p.read_kib_s),
                "writes": _series(points, lambda p: p.write_kib_s),
            },
            "network": {
                "received": _series(points, lambda p: p.rx_kib_s),
                "transmitted": _series(points, lambda p: p.tx_kib_s),
            },
        }
    }
