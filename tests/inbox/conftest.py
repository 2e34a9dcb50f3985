"""Fixtures for the inbox: databases (SQLite and real PostgreSQL), signed deliveries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from receiver.db import Database
from receiver.inbox.models import Verification
from receiver.inbox.store import NewEvent
from receiver.webhooks import jsjson
from receiver.webhooks.delivery import envelope_delivery
from receiver.webhooks.signature import sign, signed_bytes

SECRET = "whsec_inbox_test_secret"
KOTANI = "https://sandbox-api.kotanipay.com"
KOTANI_KEY = "kp_test_inbox_key_123"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'inbox.sqlite3'}"
    # A fresh database on the session's real PostgreSQL server (tests/conftest.py).
    return str(request.getfixturevalue("fresh_postgres_url"))


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    await database.upgrade()
    try:
        yield database
    finally:
        await database.dispose()


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
