"""/servers/SERVER/metrics (an extension): the server's sampled rates, one row per point."""

from __future__ import annotations

from elastic_api.api.elastichosts.call import Call
from elastic_api.api.elastichosts.codec import metrics as codec
from elastic_api.api.elastichosts.negotiate import ValuesList


async def server_metrics(call: Call) -> ValuesList:
    points = await call.services.metrics.series(call.user, call.arg("server"))
    return ValuesList([codec.point_info(point) for point in points], codec.COLUMNS)
