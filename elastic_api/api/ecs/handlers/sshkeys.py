"""`/sshkeys`: the caller's SSH public keys (shared by every group of the user)."""

from __future__ import annotations

from elastic_api.api.ecs import codec
from elastic_api.api.ecs.call import Call, Wire
from elastic_api.api.ecs.schemas import Field, read_object
from elastic_api.http.audit import created

NEW_KEY = {"key": Field(str, required=True), "label": Field(str, required=True)}


async def list_keys(call: Call) -> Wire:
    keys = await call.services.ssh_keys.list(call.user)
    return call.listing("pubkeys", keys, lambda k: str(k.id), codec.ssh_key)


async def get_key(call: Call) -> Wire:
    return {"status": "ok", "pubkey": codec.ssh_key(await call.services.ssh_keys.get(call.user, call.number("id")))}


async def add_key(call: Call) -> Wire:
    body = await read_object(call.request, call.config, NEW_KEY)
    key = await call.services.ssh_keys.add(call.user, body["label"], body["key"])
    created(call.request, str(key.id))
    # ecsapi finds the new key by its label in the list; the key itself is sent for the others.
    return {"status": "ok", "pubkey": codec.ssh_key(key)}


async def delete_key(call: Call) -> Wire:
    await call.services.ssh_keys.delete(call.user, call.number("id"))
    return {"status": "ok"}
