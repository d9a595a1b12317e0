"""How ElasticHosts spells what every object shares: `user:*` keys and lists of UUIDs."""

from __future__ import annotations

import pytest

from elastic_api.api.elastichosts.codec.fields import ids, is_user_key, one_of
from elastic_api.errors import UsageError
from elastic_api.model.ids import ALL_USERS

A = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
B = "bbbbbbbb-bbbb-cccc-dddd-eeeeeeeeeeee"


def test_user_keys():
    assert is_user_key("user:x") and is_user_key("user:a:b")
    assert not is_user_key("user:") and not is_user_key("user") and not is_user_key("xuser:y")


def test_ids_canonical_once_in_order():
    assert ids("readers", f"{B.upper()} {A} {B}", 64) == (B, A)
    assert ids("readers", "", 64) == ()
    assert ids("readers", ALL_USERS, 64, allow_all=True) == (ALL_USERS,)


@pytest.mark.parametrize(
    "value, kw, word",
    [
        ("bob", {}, "^avoid must be a list of UUIDs: 'bob'$"),
        (ALL_USERS, {}, "^avoid must name real objects$"),
        (f"{A} {B}", {"limit": 1}, "^avoid holds more than 1 entries$"),
    ],
)
def test_ids_refused(value, kw, word):
    with pytest.raises(UsageError, match=word):
        ids("avoid", value, kw.get("limit", 64))


def test_one_of():
    assert one_of("tier", "ssd", ("disk", "ssd")) == "ssd"
    with pytest.raises(UsageError, match="^tier must be one of disk, ssd$"):
        one_of("tier", "SSD", ("disk", "ssd"))
