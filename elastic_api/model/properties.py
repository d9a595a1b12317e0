"""Temporary: the ElasticHosts property format moved to api/elastichosts/properties.py. This shim
keeps model/server.py and model/server_record.py importing until they no longer need it; it goes
at the merge (tests/test_layers.py lists it as the one model module allowed to import api/)."""
from __future__ import annotations

from elastic_api.api.elastichosts.codec.fields import is_user_key
from elastic_api.api.elastichosts.properties import (
    Info, Props, Value, escape, parse_body, parse_json, parse_text, render_json, render_list,
    render_properties, render_properties_list, unescape, words,
)

__all__ = [
    "Info", "Props", "Value", "escape", "is_user_key", "parse_body", "parse_json", "parse_text", "render_json",
    "render_list", "render_properties", "render_properties_list", "unescape", "words",
]
