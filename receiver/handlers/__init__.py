"""Inbound contracts, one module each: what Kotani (or the operator) calls."""
