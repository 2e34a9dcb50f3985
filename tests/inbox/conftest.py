"""Fixtures for the inbox: databases (SQLite and a real, throw-away PostgreSQL), signed bodies."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from receiver.db import Database
from receiver.inbox.models import Verification
from receiver.inbox.store import NewEvent
from receiver.webhooks import jsjson
from receiver.webhooks.delivery import envelope_delivery
from receiver.webhooks.signature import sign, signed_bytes
from tests.support.server import free_port

SECRET = "whsec_inbox_test_secret"
KOTANI = "https://sandbox-api.kotanipay.com"
KOTANI_KEY = "kp_test_inbox_key_123"


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server of its own for the test session (skipped when not installed)."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL (initdb, pg_ctl) is not installed")
    base = Path(tempfile.mkdtemp(prefix="receiver-pg-"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
    data, port = base / "data", free_port()
    subprocess.run(
        _as_postgres([initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"]),
        check=True,
        capture_output=True,
        timeout=120,
    )
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        _as_postgres(
            [pg_ctl, "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start"]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            _as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(base, ignore_errors=True)


async def new_postgres_database(server: str) -> str:
    name = f"t_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(server.replace("postgresql+asyncpg", "postgresql") + "/postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{server}/{name}"


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'inbox.sqlite3'}"
    return await new_postgres_database(request.getfixturevalue("postgres_url"))


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
