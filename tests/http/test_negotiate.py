"""Output negotiation by Accept."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

import pytest

from elastic_api import errors
from elastic_api.api.elastichosts.errors import answer_of, error_response
from elastic_api.api.elastichosts.properties import Info
from elastic_api.api.elastichosts.negotiate import NoContent, Properties, PropertiesList, ValuesList, render, wants_json


def request(accept: str | None):
    return make_mocked_request("GET", "/", headers={"Accept": accept} if accept is not None else {})


def test_accept():
    assert wants_json(request("application/json"))
    assert wants_json(request("text/html, application/json;q=0.9"))
    for accept in (None, "", "*/*", "text/plain", "application/jsonx"):
        assert not wants_json(request(accept))


def text_of(req, result) -> web.Response:
    response = render(req, result)
    assert isinstance(response, web.Response)
    return response


def test_shapes_and_headers():
    rows: list[Info] = [{"server": "s", "cpu": 1000, "mem": 256}]
    text = text_of(request(None), ValuesList(rows, ("server", "cpu", "mem")))
    assert text.text == "s 1000 256\n" and text.headers["X-Elastic-Output"] == "list"
    assert text.content_type == "text/plain"
    js = text_of(request("application/json"), PropertiesList(rows))
    assert js.text == '[{"server":"s","cpu":1000,"mem":256}]\n' and js.content_type == "application/json"
    assert js.headers["X-Elastic-Output"] == "properties list"
    one = text_of(request(None), Properties({"name": "a\nb"}))
    assert one.text == "name a\\nb\n" and one.headers["X-Elastic-Output"] == "properties"
    assert render(request(None), NoContent()).status == 204


@pytest.mark.parametrize(
    "kind, status, word",
    [
        (errors.Invalid, 400, "usage"),
        (errors.Unauthenticated, 401, "auth"),
        (errors.QuotaExceeded, 402, "billing"),
        (errors.NotFound, 404, "missing"),
        (errors.MethodNotAllowed, 405, "method"),
        (errors.TooSlow, 408, "usage"),
        (errors.Busy, 409, "busy"),
        (errors.TooLarge, 413, "usage"),
        (errors.Failed, 500, "failed"),
        (errors.Internal, 500, "system"),
        (errors.Unavailable, 503, "busy"),
        (errors.Full, 507, "full"),
    ],
)
def test_each_error_kind_has_its_elastichosts_answer(kind, status, word):
    response = error_response(kind("one line"))
    assert (response.status, response.headers["X-Elastic-Error"], response.text) == (status, word, "one line\n")


def test_a_kind_not_in_the_table_answers_as_its_nearest_listed_parent():
    class Narrower(errors.Busy):
        pass

    assert answer_of(Narrower("x")) == (409, "busy")
    assert answer_of(errors.Error("x")) == (500, "system")
    response = error_response(errors.Unavailable("later", retry_after=7))
    assert response.headers["Retry-After"] == "7"


def test_a_sources_text_is_rendered_once_and_only_for_that_source():
    from elastic_api.api.elastichosts import negotiate

    texts = negotiate.RenderedTexts(3)
    described: list[object] = []

    def describe(source) -> Info:
        described.append(source)
        return {"name": source.name}

    class Row:
        def __init__(self, name: str) -> None:
            self.name = name

    row = Row("a")
    first = text_of_with(request(None), negotiate.Described(row, describe), texts)
    again = text_of_with(request(None), negotiate.Described(row, describe), texts)
    assert first == again == "name a\n" and described == [row]
    # Another value (an updated row) is described anew, and JSON is remembered apart.
    assert text_of_with(request(None), negotiate.Described(Row("b"), describe), texts) == "name b\n"
    assert text_of_with(request("application/json"), negotiate.Described(row, describe), texts) == ('{"name":"a"}\n')
    assert len(described) == 3
    # The bound holds; a cache of no entries describes every time.
    for i in range(5):
        text_of_with(request(None), negotiate.Described(Row(str(i)), describe), texts)
    assert len(texts._bodies) == 3
    off = negotiate.RenderedTexts(0)
    for _ in range(2):
        assert text_of_with(request(None), negotiate.Described(row, describe), off) == "name a\n"
    assert described.count(row) == 4 and not off._bodies


def text_of_with(req, result, texts) -> str:
    response = render(req, result, texts)
    assert isinstance(response, web.Response) and response.text is not None
    return response.text
