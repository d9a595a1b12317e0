"""?limit=N&marker=ID."""

from __future__ import annotations

import pytest

from elastic_api.errors import UsageError
from elastic_api.model.pages import Page, parse_page

ID = "11111111-2222-3333-4444-555555555555"


def test_pages():
    assert parse_page({}, 100) == Page()
    assert parse_page({"limit": "100", "marker": ID.upper()}, 100) == Page(100, ID)


@pytest.mark.parametrize(
    "query", [{"limit": "0"}, {"limit": "101"}, {"limit": "-1"}, {"limit": "x"}, {"marker": "nope"}, {"marker": ""}]
)
def test_bad_pages(query):
    with pytest.raises(UsageError):
        parse_page(query, 100)
