"""Output negotiation by Accept."""
from __future__ import annotations

from aiohttp.test_utils import make_mocked_request

from elastic_api.http.negotiate import NoContent, Properties, PropertiesList, ValuesList, render, wants_json


def request(accept: str | None):
    return make_mocked_request("GET", "/", headers={"Accept": accept} if accept is not None else {})


def test_accept():
    assert wants_json(request("application/json"))
    assert wants_json(request("text/html, application/json;q=0.9"))
    for accept in (None, "", "*/*", "text/plain", "application/jsonx"):
        assert not wants_json(request(accept))


def test_shapes_and_headers():
    rows = [{"server": "s", "cpu": 1000, "mem": 256}]
    text = render(request(None), ValuesList(rows, ("server", "cpu", "mem")))
    assert text.text == "s 1000 256\n" and text.headers["X-Elastic-Output"] == "list"
    assert text.content_type == "text/plain"
    js = render(request("application/json"), PropertiesList(rows))
    assert js.text == '[{"server":"s","cpu":1000,"mem":256}]\n' and js.content_type == "application/json"
    assert js.headers["X-Elastic-Output"] == "properties list"
    one = render(request(None), Properties({"name": "a\nb"}))
    assert one.text == "name a\\nb\n" and one.headers["X-Elastic-Output"] == "properties"
    assert render(request(None), NoContent()).status == 204
