"""`POST /login` and `GET /account`."""

from __future__ import annotations

from elastic_api.api.ecs.call import Call, Wire
from elastic_api.api.ecs.schemas import Field, read_form_or_object

LOGIN = {"username": Field(str, required=True), "password": Field(str, required=True)}


async def login(call: Call) -> Wire:
    """A signed token for the user UUID and secret key given (JSON or a form)."""
    body = await read_form_or_object(call.request, call.config, LOGIN)
    token, expires = await call.services.tokens.login(body["username"], body["password"].encode())
    return {"token": token, "expire": expires, "status": "ok"}


async def account(call: Call) -> Wire:
    # No e-mail, discounts, reserved or offline plans here yet: the caller is a user UUID.
    return {
        "status": "ok",
        "username": call.user,
        "email": "",
        "reserved_available": False,
        "offline_available": False,
        "ecs_special_discount": 0,
        "ecshm_special_discount": 0,
        "ecsgpu_special_discount": 0,
    }
