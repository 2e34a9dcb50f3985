"""The verifier against vectors made by Node's real JSON.stringify (vectors/make_vectors.js)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from receiver.webhooks import jsjson
from receiver.webhooks.errors import WebhookUnauthorized
from receiver.webhooks.signature import signed_bytes, verify

VECTORS_DIR = Path(__file__).parent / "vectors"
FIXTURE: dict[str, Any] = json.loads((VECTORS_DIR / "vectors.json").read_text("utf-8"))
VECTORS: list[dict[str, Any]] = FIXTURE["vectors"]
VALID = [v for v in VECTORS if v["valid"]]
INVALID = [v for v in VECTORS if not v["valid"]]


def _header(vector: dict[str, Any]) -> str | None:
    headers = {k.lower(): v for k, v in vector["headers"].items()}
    return headers.get("x-kotani-signature")


def _secrets(vector: dict[str, Any]) -> list[SecretStr]:
    return [SecretStr(s) for s in vector["secrets"]]


def test_fixture_is_substantial() -> None:
    assert len(VALID) >= 200 and len(INVALID) >= 100
    kinds = {v["kind"] for v in INVALID}
    assert kinds == {"tampered", "wrong_secret", "missing", "malformed_signature"}
    # bodies whose key order differs from {event,data,signature} are part of the valid set
    assert sum(not v["body"].startswith('{"event"') for v in VALID) >= 50


@pytest.mark.parametrize("vector", VALID, ids=[v["name"] for v in VALID])
def test_valid_vector_is_accepted_and_rebuilt_exactly(vector: dict[str, Any]) -> None:
    result = verify(vector["body"].encode("utf-8"), _header(vector), _secrets(vector))
    assert result.signed.decode("utf-8") == vector["signed"]


@pytest.mark.parametrize("vector", INVALID, ids=[v["name"] for v in INVALID])
def test_invalid_vector_is_rejected(vector: dict[str, Any]) -> None:
    with pytest.raises(WebhookUnauthorized) as caught:
        verify(vector["body"].encode("utf-8"), _header(vector), _secrets(vector))
    assert caught.value.message == "webhook signature missing or invalid"


def test_every_valid_vector_also_verifies_by_the_js_rebuild_alone() -> None:
    """Even where bytes could be cut from the raw body, the rebuild agrees with Node."""
    for vector in VALID:
        body = jsjson.loads(vector["body"])
        assert isinstance(body, dict)
        assert signed_bytes(body["event"], body["data"]).decode() == vector["signed"]  # type: ignore[arg-type]


def test_numbers_match_node() -> None:
    wrong = [
        (n["text"], n["js"], jsjson.dumps(jsjson.loads(n["text"])))
        for n in FIXTURE["numbers"]
        if jsjson.dumps(jsjson.loads(n["text"])) != n["js"]
    ]
    assert len(FIXTURE["numbers"]) >= 4000
    assert wrong == []


def test_strings_match_node() -> None:
    wrong = [s for s in FIXTURE["strings"] if jsjson.dumps(jsjson.loads(s["text"])) != s["js"]]
    assert wrong == []


def test_objects_match_node() -> None:
    wrong = [o for o in FIXTURE["objects"] if jsjson.dumps(jsjson.loads(o["text"])) != o["js"]]
    assert wrong == []


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_fixture_is_what_the_script_makes() -> None:
    """The committed fixture is the output of the committed script (the node version aside)."""
    made = subprocess.run(
        ["node", str(VECTORS_DIR / "make_vectors.js")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    fresh = json.loads(made.stdout)
    fresh.pop("node")
    committed = dict(FIXTURE)
    committed.pop("node")
    assert fresh == committed
