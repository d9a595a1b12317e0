"""A server's metrics in this dialect's style (an extension: docs/metrics.rst): one row per point,
`time` in epoch seconds (UTC) as `started` is, then `cpu` (% of the server's vCPUs busy) and
`read`, `write`, `rx`, `tx` (KiB/s), each rate with two decimals."""

from __future__ import annotations

from elastic_api.api.elastichosts.properties import Info
from elastic_api.model.metrics import MetricPoint

# The order of the text lines' columns and of the JSON objects' keys.
COLUMNS = ("time", "cpu", "read", "write", "rx", "tx")


def point_info(point: MetricPoint) -> Info:
    return {
        "time": int(point.at),
        "cpu": f"{point.cpu_percent:.2f}",
        "read": f"{point.read_kib_s:.2f}",
        "write": f"{point.write_kib_s:.2f}",
        "rx": f"{point.rx_kib_s:.2f}",
        "tx": f"{point.tx_kib_s:.2f}",
    }
