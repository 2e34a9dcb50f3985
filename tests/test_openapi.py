"""/openapi.json describes the app it is served by: every route, valid OpenAPI 3.1, and request
schemas that accept exactly what the hand-written validators accept (the deliberate
differences named); /docs renders it with no script."""

from __future__ import annotations

import re
from typing import Any

import httpx
import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from starlette.routing import BaseRoute, Mount, Route

from receiver.app import create_app
from receiver.errors import ValidationFailed
from receiver.handlers.invoice_url import parse_invoice_request, validate_reference
from receiver.handlers.spec import build_spec
from receiver.settings import Settings

IGNORED_METHODS = {"HEAD"}  # Starlette answers HEAD wherever it answers GET


def served(routes: list[BaseRoute], prefix: str = "") -> set[tuple[str, str]]:
    """(path template, method) of every route, through mounts and wrapping middleware."""
    found: set[tuple[str, str]] = set()
    for route in routes:
        if isinstance(route, Route):
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", prefix + route.path)
            found |= {(path, m) for m in route.methods or () if m not in IGNORED_METHODS}
        elif isinstance(route, Mount):
            inner: Any = route.app
            while not hasattr(inner, "routes") and hasattr(inner, "app"):
                inner = inner.app
            if hasattr(inner, "routes"):
                found |= served(inner.routes, prefix + route.path)
            else:  # an app of its own (static files): every path below the mount
                found.add((f"{prefix}{route.path}/{{file}}", "GET"))
    return found


def documented(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (path, method.upper())
        for path, item in spec["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }


@pytest.fixture
def spec(settings: Settings) -> dict[str, Any]:
    return build_spec(settings)


def test_every_route_the_app_serves_is_documented_and_no_other(
    settings: Settings, spec: dict[str, Any]
) -> None:
    app = create_app(settings)
    routes = served(app.routes)
    assert ("/console/events/{id}/replay", "POST") in routes  # the walk reaches mounted routes
    assert routes - documented(spec) == set(), "served but not in the document"
    assert documented(spec) - routes == set(), "documented but not served"


def test_the_document_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1")
    validate(spec)  # raises on any violation of the OpenAPI 3.1 schema


def test_every_operation_answers_429_with_retry_after_except_the_probes(
    spec: dict[str, Any],
) -> None:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            limited = "429" in operation["responses"]
            assert limited == (path not in ("/healthz", "/readyz")), (method, path)


def _validator(spec: dict[str, Any], name: str) -> Any:
    """A validator of one component; its ``$ref``s resolve in the document's components."""
    schema = {**spec["components"]["schemas"][name], "components": spec["components"]}
    return jsonschema_rs.validator_for(schema)


def _accepted(check: Any, *args: Any) -> bool:
    try:
        check(*args)
    except ValidationFailed:
        return False
    return True


def test_the_invoice_url_shares_the_answer_schema_and_rejects_what_it_must(
    spec: dict[str, Any],
) -> None:
    answer = _validator(spec, "InvoiceAnswer")
    good = {
        "bolt11": "lnbcrt1",
        "payment_hash": "ab" * 32,
        "amount_msat": 1,
        "expires_at": "2026-01-02T03:04:05Z",
    }
    assert answer.is_valid(good)
    assert not answer.is_valid({**good, "extra": 1})  # extra="forbid": no silent drift
    error = _validator(spec, "ErrorBody")
    assert error.is_valid({"error": {"code": "not_found", "message": "no"}})
    assert not error.is_valid({"detail": "Not Found"})


CHARACTERS = st.characters(exclude_categories=["Cs"])  # what a UTF-8 body can carry
EDGES = st.sampled_from([" ", "\u3000", "\u200b", "\u2028", "\x7f", "\ue000", "\U000e0001", "a"])


@settings(max_examples=300, deadline=None)
@given(st.text(st.one_of(CHARACTERS, EDGES), max_size=130))
def test_the_reference_schema_is_what_validate_reference_accepts(text: str) -> None:
    spec = build_spec(Settings())  # cached pattern: cheap after the first example
    assert _validator(spec, "Reference").is_valid(text) == _accepted(validate_reference, text)


REFERENCE = st.one_of(st.none(), st.sampled_from(["R-1", "R-2", " ", ""]), st.text(max_size=4))
AMOUNT = st.one_of(
    st.integers(-5, 10**12), st.floats(allow_nan=False), st.booleans(), st.none(), st.text()
)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={"amount_msat": AMOUNT, "reference_id": REFERENCE, "referenceId": REFERENCE},
    )
)
def test_the_invoice_request_schema_is_what_the_handler_accepts(body: dict[str, Any]) -> None:
    limits = Settings(max_amount_msat=10**11)
    schema_says = _validator(build_spec(limits), "InvoiceRequest").is_valid(body)
    code_says = _accepted(parse_invoice_request, body, limits.max_amount_msat)
    amount = body.get("amount_msat")
    if isinstance(amount, float) and amount.is_integer() and 1 <= amount <= 10**11:
        # Deliberate: JSON Schema's integer admits 404.0; an amount is never read from a float.
        assert not code_says
    elif isinstance(body.get("reference_id"), str) and body.get("reference_id") == body.get(
        "referenceId"
    ):
        # Deliberate: both spellings, equal, are one reference; JSON Schema cannot compare them.
        assert not schema_says
    else:
        assert schema_says == code_says, body


async def test_docs_page_shows_every_operation_without_a_script(
    settings: Settings, spec: dict[str, Any]
) -> None:
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        document = await client.get("/openapi.json")
        page = await client.get("/docs")
    assert document.status_code == 200 and document.json() == spec
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "<script" not in page.text.lower()
    assert not re.search(r'(src|href)="(https?:)?//', page.text), "an external resource"
    for item in spec["paths"].values():
        for operation in item.values():
            assert f'id="{operation["operationId"]}"' in page.text
