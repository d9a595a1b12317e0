"""The ElasticHosts metrics rows: time in epoch seconds, rates with two decimals."""

from __future__ import annotations

from elastic_api.api.elastichosts.codec.metrics import COLUMNS, point_info
from elastic_api.api.elastichosts.properties import render_json, render_list
from elastic_api.model.metrics import MetricPoint


def test_text_and_json_rows():
    rows = [
        point_info(MetricPoint(1740056400.7, 12.345, 0.0, 3.0, 7.126, 1024.0)),
        point_info(MetricPoint(1740056700, 100.0, 1.0, 0.004, 0.0, 0.0)),
    ]
    assert render_list(rows, COLUMNS) == (
        "1740056400 12.35 0.00 3.00 7.13 1024.00\n1740056700 100.00 1.00 0.00 0.00 0.00\n"
    )
    assert render_json(rows) == (
        '[{"time":1740056400,"cpu":"12.35","read":"0.00","write":"3.00","rx":"7.13","tx":"1024.00"},'
        '{"time":1740056700,"cpu":"100.00","read":"1.00","write":"0.00","rx":"0.00","tx":"0.00"}]\n'
    )
