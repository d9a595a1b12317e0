"""Use cases: ownership, state machines and per-object locks over the store and the backends."""
