"""Fixtures for the inbox: databases (SQLite and real PostgreSQL), signed deliveries."""

from __future__ import annotations

from typing import Any

from receiver.inbox.models import Verification
from receiver.inbox.store import NewEvent
from receiver.webhooks import jsjson
from receiver.webhooks.delivery import envelope_delivery
from receiver.webhooks.signature import sign, signed_bytes
from tests.db.conftest import db, db_url  # noqa: F401 (the same two databases)

SECRET = "whsec_inbox_test_secret"
KOTANI = "https://sandbox-api.kotanipay.com"
KOTANI_KEY = "kp_test_inbox_key_123"


def signed(event: str, data: dict[str, Any], secret: str = SECRET) -> tuple[bytes, str]:
    """A body as Kotani sends it, and its X-Kotani-Signature."""
    message = signed_bytes(event, data)
    signature = sign(secret, message)
    body = message[:-1] + b',"signature":' + jsjson.dumps(signature).encode() + b"}"
    return body, signature


def new_event(event: str, data: dict[str, Any]) -> NewEvent:
    """A signed delivery as the inbox receives it."""
    body, signature = signed(event, data)
    parsed = jsjson.loads(body)
    assert isinstance(parsed, dict) and isinstance(parsed["data"], dict)
    delivery = envelope_delivery(event, parsed["data"])
    return NewEvent(
        delivery, Verification.SIGNATURE, "raw#0", body, {"x-kotani-signature": signature}
    )
