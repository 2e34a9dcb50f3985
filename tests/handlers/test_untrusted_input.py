"""Untrusted input fails only in our own error types (fuzzed with hypothesis)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.errors import ConfigError, InvalidJSON, ValidationFailed
from receiver.handlers._body import parse_json_object
from receiver.handlers.invoice_url import parse_invoice_request
from receiver.settings import load_settings

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


@given(
    st.dictionaries(
        st.sampled_from(["amount_msat", "reference_id", "referenceId", "other"]),
        json_values,
    )
)
def test_request_parser_raises_only_validation_errors(payload: dict[str, object]) -> None:
    try:
        parsed = parse_invoice_request(payload, 10**11)
    except ValidationFailed:
        return
    assert type(parsed.amount_msat) is int and 0 < parsed.amount_msat <= 10**11
    assert parsed.reference_id.strip()


@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_body_parser_raises_only_invalid_json(body: bytes) -> None:
    try:
        document = parse_json_object(body)
    except InvalidJSON:
        return
    assert isinstance(document, dict)
    assert json.loads(body) == document or document != document  # NaN keeps NaN != NaN


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(
        [
            "RECEIVER_PORT",
            "RECEIVER_DEADLINE",
            "RECEIVER_NETWORK",
            "RECEIVER_BACKENDS",
            "RECEIVER_INVOICE_TOKENS",
            "RECEIVER_MIN_VALIDITY",
            "RECEIVER_PUBLIC_URL",
            "RECEIVER_INVOICE_DESCRIPTION",
            "RECEIVER_MAX_AMOUNT_MSAT",
            "RECEIVER_KOTANI_BASE_URL",
        ]
    ),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        max_size=30,
    ),
)
def test_settings_loader_raises_only_config_errors(name: str, value: str) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(name, value)
        try:
            load_settings(_env_file=None)
        except ConfigError as exc:
            assert name in exc.message
