"""Fixtures for the Kotani client tests: mocks built from Kotani's own OpenAPI, signed invoices.

``spec`` reads ``openapi_subset.json`` (extracted from Kotani's OpenAPI by ``extract_openapi.py``)
and builds request and response bodies from the schemas' ``example`` values, so a mock answers
with what Kotani documents rather than with a shape invented here; ``spec.check`` validates an
outgoing body against the request schema (required fields, types, enums, no unknown fields).
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import bolt11
import coincurve
import pytest
from bolt11.models.tags import TagChar, Tags
from pydantic import SecretStr

from receiver.kotani.client import RETRY, KotaniClient

BASE = "https://sandbox-api.kotanipay.com"
API_KEY = "kp_test_SECRET_4f9a2c71e0"


class Spec:
    """Examples and checks from Kotani's OpenAPI schemas."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.schemas: dict[str, Any] = doc["components"]["schemas"]

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        if "$ref" in schema:
            return self.resolve(self.schemas[schema["$ref"].rsplit("/", 1)[1]])
        if "allOf" in schema:
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                merged.update(self.resolve(part))
            return merged
        return schema

    def example(self, schema: dict[str, Any] | str) -> Any:
        """An instance built from the schema's ``example`` values (recursively)."""
        if isinstance(schema, str):
            schema = self.schemas[schema]
        resolved = self.resolve(schema)
        if "properties" in resolved:
            out = {}
            for name, prop in resolved["properties"].items():
                value = self.example(prop)
                if value is not None:
                    out[name] = value
            return out
        if "example" in resolved:
            return copy.deepcopy(resolved["example"])
        if "enum" in resolved:
            return resolved["enum"][0]
        return None

    def operation(self, path: str, method: str) -> dict[str, Any]:
        return self.doc["paths"][path][method.lower()]

    def request_schema(self, path: str, method: str) -> dict[str, Any]:
        body = self.operation(path, method)["requestBody"]["content"]["application/json"]
        return self.resolve(body["schema"])

    def request_example(self, path: str, method: str) -> Any:
        return self.example(self.request_schema(path, method))

    def response(self, path: str, method: str, status: int) -> dict[str, Any]:
        """The documented envelope for this status, from its examples."""
        responses = self.operation(path, method)["responses"]
        schema = responses[str(status)]["content"]["application/json"]["schema"]
        return self.example(schema)

    def documented_statuses(self, path: str, method: str) -> list[int]:
        return sorted(int(code) for code in self.operation(path, method)["responses"])

    def check(self, schema: dict[str, Any] | str, value: Any, where: str = "body") -> None:
        """Assert ``value`` matches the schema: types, enums, required, no unknown fields."""
        if isinstance(schema, str):
            schema = self.schemas[schema]
        resolved = self.resolve(schema)
        kind = resolved.get("type", "object" if "properties" in resolved else None)
        if "enum" in resolved:
            assert value in resolved["enum"], f"{where}: {value!r} not in enum"
        if kind == "string":
            assert isinstance(value, str), f"{where}: expected a string, got {value!r}"
        elif kind == "number":
            assert isinstance(value, int | float) and not isinstance(value, bool), (
                f"{where}: expected a JSON number, got {value!r}"
            )
        elif kind == "boolean":
            assert isinstance(value, bool), f"{where}: expected a boolean"
        elif kind == "array":
            assert isinstance(value, list), f"{where}: expected an array"
            for i, item in enumerate(value):
                self.check(resolved.get("items", {}), item, f"{where}[{i}]")
        elif kind == "object":
            assert isinstance(value, dict), f"{where}: expected an object"
            props = resolved.get("properties", {})
            for name in resolved.get("required", []):
                assert name in value, f"{where}: required field {name!r} missing"
            if props:
                unknown = set(value) - set(props)
                assert not unknown, f"{where}: fields not in the schema: {sorted(unknown)}"
            for name, item in value.items():
                if name in props:
                    self.check(props[name], item, f"{where}.{name}")


@pytest.fixture(scope="session")
def spec() -> Spec:
    return Spec(json.loads(Path(__file__).with_name("openapi_subset.json").read_text()))


def envelope(data: Any, message: str = "ok", success: bool = True) -> dict[str, Any]:
    """Kotani's documented ``{success, message, data}`` wrapper (for 200s the OpenAPI omits)."""
    return {"success": success, "message": message, "data": data}


class Sleeps:
    """Records back-off sleeps instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def kotani(sleeps: Sleeps) -> AsyncIterator[KotaniClient]:
    async with KotaniClient(
        BASE,
        SecretStr(API_KEY),
        5.0,
        retry=RETRY,
        sleep=sleeps,
    ) as client:
        yield client


def sign_invoice(
    amount_msat: int,
    *,
    expiry: int = 900,
    created_at: int | None = None,
    currency: str = "bc",
    payment_hash: str | None = None,
) -> tuple[str, str]:
    """A real, signed bolt11 invoice (as Kotani's node would issue) and its payment hash."""
    key = coincurve.PrivateKey(secrets.token_bytes(32))
    payment_hash = payment_hash or hashlib.sha256(secrets.token_bytes(32)).hexdigest()
    tags = Tags()
    tags.add(TagChar.payment_hash, payment_hash)
    tags.add(TagChar.payment_secret, secrets.token_hex(32))
    tags.add(TagChar.description, "Kotani refund")
    tags.add(TagChar.expire_time, expiry)
    invoice = bolt11.Bolt11(
        currency=currency,
        amount_msat=bolt11.MilliSatoshi(amount_msat),
        date=int(time.time()) if created_at is None else created_at,
        tags=tags,
    )
    return bolt11.encode(invoice, key.secret.hex()), payment_hash
