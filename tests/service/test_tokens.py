"""Long-lived API tokens as made: random, URL-safe, and never read by the CLI as an option."""

from __future__ import annotations

from elastic_api.service.tokens import new_token


def test_a_token_never_begins_with_a_dash():
    # One in 64 random base64url texts begins with "-", which `elastic-api user token revoke
    # TOKEN` took for an option; 3,000 draws would show one with near certainty.
    tokens = {new_token() for _ in range(3000)}
    assert len(tokens) == 3000
    assert not [t for t in tokens if t.startswith("-")]
    assert all(len(t) >= 40 and t.replace("-", "").replace("_", "").isalnum() for t in tokens)
