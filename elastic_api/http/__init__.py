"""The HTTP layer: one route table, Basic auth, content negotiation and error mapping."""
