"""Changing calls into the audit trail, for any dialect. A dialect's route table marks the routes
that change something (`Route.audited`); `endpoint` hands each such call, once authenticated, to
the dialect's `Auditor`, which queues one entry when the call has its answer (service/audit.py
writes the queue in groups, off the hot path). Reads, calls without credentials (no one to
record them for) and a method a path does not take are not recorded.

An entry holds the route's pattern, never the raw path, query, headers or body: no secret, key
or password can reach the trail."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiohttp import web

from elastic_api.errors import Error
from elastic_api.http.middleware import CLIENT_GONE, Render, client_gone, from_aiohttp
from elastic_api.model.audit import Actor, AuditEntry
from elastic_api.service.audit import AuditService

P = TypeVar("P")
log = logging.getLogger(__name__)
_CREATED = web.RequestKey("audit_created", str)
# An ID longer than this is no ID of ours: the trail keeps a prefix of what a client put in a path.
MAX_TARGET = 100


def created(request: web.BaseRequest, object_id: str) -> None:
    """Name the object a create made, as its call's target (a handler calls this when cheap)."""
    request[_CREATED] = object_id


@dataclass(frozen=True)
class Auditor(Generic[P]):
    service: AuditService
    dialect: str  # "elastichosts", "ecs"
    actor: Callable[[P], Actor | None]  # who the dialect's caller is; None: nobody to record for
    targets: tuple[str, ...]  # path parameters naming the object a call is about, in preference
    render: Render  # the dialect's answer to an error: its status is the outcome

    async def call(
        self,
        request: web.Request,
        pattern: str,
        caller: P,
        handler: Callable[[web.Request, P], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        actor = self.actor(caller)
        if actor is None:
            return await handler(request, caller)
        try:
            response = await handler(request, caller)
        except BaseException as e:
            self._record(request, pattern, actor, self._status(request, e))
            raise
        self._record(request, pattern, actor, response.status)
        return response

    def _status(self, request: web.Request, e: BaseException) -> int:
        """The status the dialect answers an error with (http.middleware.answer_error makes the answer)."""
        if isinstance(e, asyncio.CancelledError) or client_gone(request):
            return CLIENT_GONE
        if isinstance(e, web.HTTPException):
            return e.status if e.status < 400 else self.render(from_aiohttp(e, request)).status
        if isinstance(e, Error):
            return self.render(e).status
        return 500

    def _record(self, request: web.Request, pattern: str, actor: Actor, status: int) -> None:
        try:
            target: Any = next((request.match_info[k] for k in self.targets if k in request.match_info), None)
            if target is None:
                target = request.get(_CREATED)
            self.service.record(
                AuditEntry(
                    actor,
                    self.dialect,
                    request.method,
                    pattern,
                    None if target is None else str(target)[:MAX_TARGET],
                    time.time_ns(),
                    status,
                )
            )
        except Exception:  # a failure to record never turns a call's answer into an error
            self.service.dropped += 1
            log.exception("could not queue an audit entry for %s %s", request.method, pattern)
