"""Snapshots, rollback and templates through the real client, ecsapi 0.4.0, against `elastic-api
serve` on qemu:///system with real guests (a boot sector that prints a marker on its serial port):
a snapshot of the stopped server, its boot sector wiped through the other dialect so the guest no
longer boots, a rollback of the running server (stopped, restored, started again: the marker is
back), the server's last_restored_snapshot as ecsapi parses it, a template made from the snapshot
and a server created from the template that boots, ecsapi's template calls, and the refusals."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pydantic
import pytest
from ecsapi import ServerCreateRequest, SnapshotListAdapter
from ecsapi.errors import ClientError, NotFoundError

from tests.api.ecs.test_ecsapi_servers import client, engine_server, served, serial  # noqa: F401 - the fixture
from tests.hypervisor.bootsector_image import BOOT_MARKER, boot_sector
from tests.support import GUEST_DEADLINE, as_json, request, wait_until

pytestmark = [pytest.mark.libvirt, pytest.mark.timeout(8 * GUEST_DEADLINE)]


def ecs(server: Any, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """A call ecsapi has no method for (snapshots are not among its calls)."""
    sent = urllib.request.Request(
        server.url + "/ecs/v2" + path,
        method=method,
        headers={"X-APITOKEN": token, "Content-Type": "application/json"},
        data=None if body is None else json.dumps(body).encode(),
    )
    try:
        with urllib.request.urlopen(sent, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def boot_drive(server: Any, user: str, secret: str, name: str) -> str:
    status, _, body = request(
        server.url + "/drives/info", user, secret, method="GET", headers={"Accept": "application/json"}
    )
    assert status == 200
    return next(d["drive"] for d in as_json(body) if d["name"] == name)


def first_sector(server: Any, user: str, secret: str, drive: str) -> bytes:
    status, _, body = request(server.url + f"/drives/{drive}/read/0/512", user, secret, method="GET")
    assert status == 200, body
    return body


def test_snapshot_rollback_and_template_through_ecsapi(served):  # noqa: F811
    config, server, user, secret, token = served
    api = client(server, token)
    made, action_id = api.create_server(ServerCreateRequest(plan="ECS1", image="boot-sector-1", location="local"))
    assert api.watch_action(action_id, fetch_every=0.5).status == "completed"
    name = made.name
    uuid = engine_server(server, user, secret, name)
    wait_until(lambda: serial(config, uuid).count(BOOT_MARKER) >= 1, "the first boot", GUEST_DEADLINE)
    drive = boot_drive(server, user, secret, name)

    # A snapshot needs the server stopped (409 while it runs).
    status, refused = ecs(server, token, "POST", f"/servers/{name}/snapshots", {"description": "booting"})
    assert status == 409 and "power it off" in refused["message"]
    assert api.watch_action(api.turn_off_server(name).id, fetch_every=0.5).status == "completed"
    status, taken = ecs(server, token, "POST", f"/servers/{name}/snapshots", {"description": "booting", "notes": "n"})
    assert status == 200, taken
    assert api.watch_action(taken["action_id"], fetch_every=0.5).type == "create_snapshot"
    status, listed = ecs(server, token, "GET", f"/servers/{name}/snapshots")
    snapshots = SnapshotListAdapter.validate_python(listed["snapshots"])  # ecsapi's own model of them
    assert [(s.id, s.status, s.description, s.source_server) for s in snapshots] == [
        (taken["snapshot"]["id"], "CD", "booting", name)
    ]
    snap = snapshots[0].id

    # The boot sector wiped through the other dialect: the guest boots no more.
    status, _, _ = request(
        server.url + f"/drives/{drive}/write",
        user,
        secret,
        bytes(512),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert status in (200, 204)
    assert first_sector(server, user, secret, drive) == bytes(512)
    assert api.watch_action(api.turn_on_server(name).id, fetch_every=0.5).status == "completed"
    assert api.fetch_server_status(name) == "Running"

    # Rollback of the running server: Reimaging, stopped, restored, started again, Booted.
    rollback = api.rollback_server(name, snap)
    assert (rollback.type, rollback.resource) == ("rollback", name)
    assert api.watch_action(rollback.id, fetch_every=0.5).status == "completed"
    # The restored sector boots again (its bytes cannot be read while the guest holds the drive).
    wait_until(lambda: serial(config, uuid).count(BOOT_MARKER) >= 2, "the boot after the rollback", GUEST_DEADLINE)
    got = api.fetch_server(name)
    assert got.status == "Booted" and api.fetch_server_status(name) == "Running"
    assert got.last_restored_snapshot is not None
    assert (got.last_restored_snapshot.id, got.last_restored_snapshot.is_last_restored) == (snap, True)

    # Templates: from the running server without a snapshot 409; from its snapshot, made.
    with pytest.raises(ClientError) as running:
        api.create_template(server=name, description="now")
    assert running.value.response.status_code == 409
    template, action_id = api.create_template(snapshot=snap, description="boot sector", notes="from a snapshot")
    assert template.status == "CG" and template.name.startswith("ei")
    assert api.watch_action(action_id, fetch_every=0.5).status == "completed"
    template = api.fetch_template(template.id)
    assert (template.status, template.required_disk, template.public) == ("CD", 1, False)
    assert [t.name for t in api.fetch_templates()] == [template.name]
    edited = api.update_template(template.id, description="d2")
    assert (edited.description, edited.notes) == ("d2", "from a snapshot")  # a null leaves notes

    # A server from the template boots what the snapshot held.
    copy, action_id = api.create_server(ServerCreateRequest(plan="ECS1", image=template.name, location="local"))
    assert api.watch_action(action_id, fetch_every=0.5).status == "completed"
    assert api.fetch_server(copy.name).so == template.name
    copy_uuid = engine_server(server, user, secret, copy.name)
    wait_until(lambda: BOOT_MARKER in serial(config, copy_uuid), "the template's guest to boot", GUEST_DEADLINE)
    assert api.watch_action(api.turn_off_server(copy.name).id, fetch_every=0.5).status == "completed"
    assert first_sector(server, user, secret, boot_drive(server, user, secret, copy.name)) == boot_sector()

    # Refusals: in use, unknown, another server's snapshot id.
    with pytest.raises(ClientError) as in_use:
        api.delete_template(template.id)
    assert in_use.value.response.status_code == 409
    with pytest.raises(NotFoundError):
        api.fetch_template(999999)
    with pytest.raises(ClientError) as unknown:
        api.create_template(server="ec999999")
    assert unknown.value.response.status_code == 400 and "server not found" in unknown.value.response.text
    with pytest.raises(pydantic.ValidationError):  # 404; ecsapi does not look at this status
        api.rollback_server(name, 999999)
    with pytest.raises(pydantic.ValidationError):
        api.rollback_server(copy.name, snap)  # not that server's snapshot: 404

    # Once its server is gone the template goes, by its action.
    assert api.watch_action(api.delete_server(copy.name).id, fetch_every=0.5).status == "completed"
    deleted = api.delete_template(template.id)
    assert (deleted.type, deleted.resource) == ("delete_template", template.name)
    assert api.watch_action(deleted.id, fetch_every=0.5).status == "completed"
    with pytest.raises(NotFoundError):
        api.fetch_template(template.id)
    assert api.fetch_templates() == []
