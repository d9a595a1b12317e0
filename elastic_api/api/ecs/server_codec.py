"""ECS servers and actions → their wire objects (ECS.md §4). Pure functions: sizes as digit
strings, ids integers, times RFC 3339 with an offset, no value null (but reserved_until "")."""

from __future__ import annotations

import time

from elastic_api.api.ecs.codec import API_VERSION, Wire, timestamp
from elastic_api.api.ecs.records import reserved_fields, server_support
from elastic_api.api.ecs.snapshot_codec import action_target, snapshot
from elastic_api.model import ecs as model
from elastic_api.model.job import DONE, FAILED, Job
from elastic_api.service.ecs_servers import EcsServerView

# The runner's job statuses as actions show them: queued and running are both in progress.
ACTION_STATUS = {DONE: "completed", FAILED: "failed"}


def server(view: EcsServerView) -> Wire:
    s = view.server
    return {
        "name": s.name,
        "ipv4": view.ipv4,
        "ipv6": "",
        "group": view.group,
        "plan": s.plan,
        "plan_size": {
            "core": str(s.cores),
            "ram": str(s.ram_mb),
            "disk": str(s.disk_gb),
            "gpu": "0",
            "gpu_label": None,
            "host_type": "ECS",
        },
        **reserved_fields(view.reservations, s.name, time.time_ns()),
        "last_restored_snapshot": (
            snapshot(view.last_restored, s.name, view.parent) if view.last_restored is not None else None
        ),
        "support": server_support(view.support, s.name, s.notes) if view.support is not None else None,
        "location": s.location,
        "location_label": view.region.description,
        "notes": s.notes,
        "so": s.so,
        "so_label": s.so_label,
        "creation_date": timestamp(s.created),
        "deletion_date": None,
        "active_flag": s.status == model.BOOTED,
        "status": s.status,
        "progress": 100 if s.status == model.BOOTED else view.progress,
        "api_version": API_VERSION[0],
        "api_version_value": API_VERSION[1],
        "user": s.owner,
        "virttype": "KVM",
        "ssh_key": s.ssh_key,
    }


def action(job: Job) -> Wire:
    resource, resource_type = action_target(job)
    return {
        "id": job.id,
        "status": ACTION_STATUS.get(job.status, "in-progress"),
        "user": job.owner,
        "created_at": timestamp(job.created),
        "started_at": timestamp(job.started) if job.started is not None else None,
        "completed_at": timestamp(job.finished) if job.finished is not None else None,
        "resource": resource,
        "resource_type": resource_type,
        "type": job.kind,
        "progress": job.progress,
        # Why a failed action failed: not in Seeweb's object, harmless to its clients (ECS.md §2.5).
        "error": job.error,
    }
