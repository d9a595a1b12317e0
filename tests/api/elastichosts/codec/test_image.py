"""A standard image's ElasticHosts info (golden)."""

from __future__ import annotations

from elastic_api.api.elastichosts.codec.image import to_info
from elastic_api.api.elastichosts.properties import render_properties
from elastic_api.model.image import StandardImage

GOLDEN = """\
drive 5e7e0000-0000-4000-8000-000000000001
name Debian 12
size 2147483648
user 00000000-0000-0000-0000-000000000000
status active
claimed
claim:type shared
readers ffffffff-ffff-ffff-ffff-ffffffffffff
tags standard
encryption:cipher none
format gzip
""".replace("claimed\n", "claimed \n")  # an empty list: key and space (spelt so: editors strip trailing spaces)


def test_golden():
    image = StandardImage("5e7e0000-0000-4000-8000-000000000001", "Debian 12", 2 << 30, created=7)
    assert render_properties(to_info(image)) == GOLDEN
