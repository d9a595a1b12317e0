"""Snapshots and templates → their ECS wire objects (ECS.md §4 Snapshot and Image), and what an
action of theirs names as its resource. Pure functions."""

from __future__ import annotations

from elastic_api.api.ecs.codec import API_VERSION, Wire, timestamp
from elastic_api.model.catalogue import os_base, os_version
from elastic_api.model.job import CREATE_SNAPSHOT, CREATE_TEMPLATE, DELETE_TEMPLATE, Job, SnapshotParams, TemplateParams
from elastic_api.model.snapshot import CREATED, STATUS_LABELS, Snapshot, Template, template_name


def snapshot_name(s: Snapshot) -> str:
    return f"snap{s.id}"


def snapshot(s: Snapshot, server_name: str, parent: Snapshot | None = None) -> Wire:
    """A Snapshot as ecsapi reads it; its parent inside it, one level deep."""
    return {
        "id": s.id,
        "name": snapshot_name(s),
        "user": s.owner,
        "snapshot_parent": snapshot(parent, server_name) if parent is not None else None,
        "snapshot_parent_name": snapshot_name(parent) if parent is not None else None,
        "is_last_restored": s.last_restored,
        "protected": False,
        "restoring": False,
        "source_server": server_name,
        "status": s.status,
        "status_label": STATUS_LABELS.get(s.status, s.status),
        "uid": s.tag,
        "description": s.description,
        "notes": s.notes,
        "active_flag": s.status == CREATED,
        "size_on_disk": None,  # the drive's file holds it with the drive's clusters: not apart
        "created_at": timestamp(s.created),
        "updated_at": timestamp(s.updated),
        "deleted_at": None,
        "api_version_value": API_VERSION[1],
        "api_version": API_VERSION[0],
    }


def template(t: Template) -> Wire:
    """A template as an Image: named `ei` + 6 digits, private, sized by its source drive."""
    return {
        "id": t.id,
        "name": t.name,
        "uuid": t.uuid,
        "description": t.description,
        "notes": t.notes,
        "creation_date": timestamp(t.created),
        "deletion_date": None,
        "active_flag": t.status == CREATED,
        "status": t.status,
        "public": False,
        "cloud_image": False,
        "so_base": os_base(t.so) if t.so else "",
        "required_disk": t.required_disk_gb,
        "api_version": API_VERSION[0],
        "api_version_value": API_VERSION[1],
        "version": os_version(t.so) if t.so else "",
        "source_server": t.source,
        "snapshot": t.snapshot,
    }


def action_target(job: Job) -> tuple[str, str]:
    """(resource, resource_type) an action shows: a snapshot's number (SNP), a template's name
    (ECI), else the server's name (ECS). Snapshot and template jobs run on their server's name
    (service/ecs_snapshots.py), which the stored job keeps as its resource."""
    params = job.params
    if job.kind == CREATE_SNAPSHOT and isinstance(params, SnapshotParams):
        return str(params.snapshot), "SNP"
    if job.kind in (CREATE_TEMPLATE, DELETE_TEMPLATE) and isinstance(params, TemplateParams):
        return template_name(params.template), "ECI"
    return job.resource, "ECS"
