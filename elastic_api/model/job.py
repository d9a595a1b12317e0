"""Jobs: background work on one resource (an image copy into a drive, later others), persisted so
that a restart resumes or fails it, with progress, times, error and a lease for several nodes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
STATUSES = (QUEUED, RUNNING, DONE, FAILED)
UNFINISHED = (QUEUED, RUNNING)

IMAGE = "image"  # copy a drive or a standard image into a drive (the resource)
# The ECS dialect's actions, on an ECS server (the resource: its name).
CREATE_SERVER, DELETE_SERVER, POWER_ON, POWER_OFF, CONSOLE = (
    "create_server",
    "delete_server",
    "power_on",
    "power_off",
    "console",
)
# Snapshots, rollback and templates (service/ecs_snapshots.py, service/templates.py): a snapshot
# or rollback job and a template made from a server run on the server's name, so they queue
# behind its other actions; a template's delete runs on the template's name.
CREATE_SNAPSHOT, ROLLBACK, CREATE_TEMPLATE, DELETE_TEMPLATE = (
    "create_snapshot",
    "rollback",
    "create_template",
    "delete_template",
)
ACTIONS = (
    CREATE_SERVER,
    DELETE_SERVER,
    POWER_ON,
    POWER_OFF,
    CONSOLE,
    CREATE_SNAPSHOT,
    ROLLBACK,
    CREATE_TEMPLATE,
    DELETE_TEMPLATE,
)
# Kinds whose finished jobs are history the owner lists: never pruned (an image job's older
# finished ones are, as only the last says anything about its drive).
KEPT = frozenset(ACTIONS)


@dataclass(frozen=True)
class ImageParams:
    source: str  # a drive's or a standard image's UUID
    conversion: str  # "", "gzip" or "gunzip"


@dataclass(frozen=True)
class ActionParams:
    """An ECS action needs nothing beyond its server's row (its resource names it)."""


@dataclass(frozen=True)
class SnapshotParams:
    """A snapshot made or restored on the job's server (`restart`: a rollback starts the guest
    again, as it was running when the rollback was asked)."""

    snapshot: int
    restart: bool = False


@dataclass(frozen=True)
class TemplateParams:
    """A template made from the job's server (or a snapshot of it), or deleted."""

    template: int
    snapshot: int | None = None


# Each kind's parameters, typed; stored as JSON with the job.
Params = ImageParams | ActionParams | SnapshotParams | TemplateParams
_PARAMS: dict[str, type[Params]] = {
    IMAGE: ImageParams,
    **{kind: ActionParams for kind in ACTIONS},
    CREATE_SNAPSHOT: SnapshotParams,
    ROLLBACK: SnapshotParams,
    CREATE_TEMPLATE: TemplateParams,
    DELETE_TEMPLATE: TemplateParams,
}


@dataclass(frozen=True)
class Job:
    id: int  # assigned by the store when the job is added (0 before)
    kind: str
    owner: str  # the user the job acts for
    resource: str  # the object it works on; jobs on one resource run one at a time, in id order
    params: Params
    status: str = QUEUED
    progress: int = 0  # percent, 0-100 (the stored value lags the live one; see service/jobs.py)
    created: int = 0  # nanoseconds since the epoch; 0: unknown (rows older than the jobs table)
    started: int | None = None
    finished: int | None = None
    error: str | None = None  # why a failed job failed, in words for its owner
    lease_holder: str | None = None  # the node running it (installation ID/node name) while running
    lease_expires: int | None = None  # nanoseconds; a running job past this is its holder's no more

    @property
    def unfinished(self) -> bool:
        return self.status in UNFINISHED


def params_json(params: Params) -> str:
    return json.dumps(vars(params), sort_keys=True)


def parse_params(kind: str, text: str) -> Params:
    """A stored job's parameters; ValueError for a kind this version does not know."""
    try:
        cls = _PARAMS[kind]
    except KeyError:
        raise ValueError(f"unknown job kind {kind!r}") from None
    data: dict[str, Any] = json.loads(text)
    return cls(**data)
