"""Request bodies of the ECS dialect, parsed strictly (ECS.md §2.6): JSON with or without a
Content-Type (an empty body is `{}`), or a form for the login; an unknown key, a key given
twice, a wrong type or a missing required key is a 400. `null` counts as "not given" for the
fields that say so (clients send every field, nulls included)."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from elastic_api.config import Config
from elastic_api.errors import Invalid, TooLarge, TooSlow
from elastic_api.http.body import go_on, read_small

FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass(frozen=True)
class Field:
    kind: type  # str, int or bool; an int is never a bool here, though Python says it is
    required: bool = False
    nullable: bool = False  # null is "not given"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise Invalid(f"field given twice: {key[:40]}")
        found[key] = value
    return found


def _no_constant(name: str) -> Any:
    raise Invalid(f"{name} is not a JSON number")


def parse_json(raw: bytes) -> Any:
    """A JSON document; an empty body is an empty object."""
    if not raw.strip():
        return {}
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise Invalid("body is not UTF-8") from None
    except json.JSONDecodeError as e:
        raise Invalid(f"body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise Invalid("body is nested too deeply") from None
    except ValueError:  # a number past Python's int-string limit
        raise Invalid("body holds a number too long") from None


def parse_object(data: Any, fields: Mapping[str, Field]) -> dict[str, Any]:
    """The given fields of a JSON object, each checked against its Field; absent and (where
    allowed) null fields are left out."""
    if not isinstance(data, dict):
        raise Invalid("body must be a JSON object")
    for key in data:
        if key not in fields:
            raise Invalid(f"unknown field: {key[:40]}")
    result = {}
    for key, field in fields.items():
        value = data.get(key)
        if value is None and (key not in data or field.nullable):
            if field.required:
                raise Invalid(f"{key} is required")
            continue
        if not isinstance(value, field.kind) or (field.kind is int and isinstance(value, bool)):
            raise Invalid(f"{key} must be {_NAMES[field.kind]}")
        if isinstance(value, str) and not _encodable(value):
            raise Invalid(f"{key} must be valid Unicode (JSON allows lone surrogates; we do not)")
        if isinstance(value, str) and "\x00" in value:
            # No text of this dialect holds a NUL; PostgreSQL could not store one either.
            raise Invalid(f"{key} must not hold a NUL character")
        result[key] = value
    return result


_NAMES = {str: "a string", int: "an integer", bool: "true or false", list: "a list"}


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def read_object(request: web.Request, config: Config, fields: Mapping[str, Field]) -> dict[str, Any]:
    """The JSON body of a request, checked against `fields`."""
    return parse_object(parse_json(await read_small(request, config)), fields)


async def read_form_or_object(request: web.Request, config: Config, fields: Mapping[str, Field]) -> dict[str, Any]:
    """A JSON body, or a form (urlencoded or multipart, as `curl -F` sends) of string fields."""
    if request.content_type not in FORMS:
        return await read_object(request, config, fields)
    if request.content_type == FORMS[0]:
        raw = await read_small(request, config)
        if raw.lstrip().startswith(b"{"):
            # JSON labelled as a form: what `curl -d '{...}'` and urllib send by default.
            return parse_object(parse_json(raw), fields)
        try:
            pairs = urllib.parse.parse_qsl(
                raw.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(raw), max_num_fields=len(fields) + 1
            )
        except (UnicodeDecodeError, ValueError):
            raise Invalid("form body is not valid") from None
        return parse_object(_no_duplicates(pairs), fields)
    if (request.content_length or 0) > config.max_metadata_body:
        raise TooLarge(f"body larger than {config.max_metadata_body} bytes")
    go_on(request)
    try:
        async with asyncio.timeout(config.body_timeout):
            form = await request.post()  # multipart: read by aiohttp within client_max_size
    except TimeoutError:
        raise TooSlow(f"request body not received within {config.body_timeout} seconds") from None
    except ValueError:
        raise Invalid("multipart body is not valid") from None
    data: list[tuple[str, Any]] = []
    for key, value in form.items():
        if not isinstance(value, str):
            raise Invalid(f"{key[:40]} must be a plain form field, not a file")
        data.append((key, value))
    return parse_object(_no_duplicates(data), fields)
