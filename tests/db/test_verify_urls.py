"""The lnaddress verify-URL store on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from receiver.db import Database
from receiver.db.types import utcnow
from receiver.db.verify_urls import SqlVerifyUrls, VerifyUrl


@pytest.fixture
def store(db: Database) -> SqlVerifyUrls:
    return SqlVerifyUrls(db)


async def test_put_get_replace_and_unknown(store: SqlVerifyUrls) -> None:
    soon = utcnow().replace(microsecond=0) + timedelta(hours=1)
    await store.put("aa" * 32, "https://ln.example/verify/1", 21_000, soon)
    assert await store.get("aa" * 32) == VerifyUrl("https://ln.example/verify/1", 21_000, soon)
    await store.put("aa" * 32, "https://ln.example/verify/2", 21_000, soon)
    found = await store.get("aa" * 32)
    assert found is not None and found.verify_url == "https://ln.example/verify/2"
    assert await store.get("bb" * 32) is None


async def test_prune_drops_only_what_expired_before(store: SqlVerifyUrls) -> None:
    now = utcnow()
    await store.put("01" * 32, "https://ln.example/old", 1_000, now - timedelta(days=2))
    await store.put("02" * 32, "https://ln.example/new", 1_000, now + timedelta(hours=1))
    assert await store.prune(now - timedelta(days=1)) == 1
    assert await store.get("01" * 32) is None
    assert await store.get("02" * 32) is not None
