"""Shared fixtures: settings on a temporary data dir, the fake backend, a live server."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest

from receiver.settings import Settings

# No per-example deadline: a busy machine must not fail a property test (speed lives in bench/).
hypothesis.settings.register_profile("receiver", deadline=None)
hypothesis.settings.load_profile("receiver")

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server for the whole session (fails in CI when it cannot start)."""
    from tests.support.postgres import postgres_server

    try:
        server = postgres_server()
        url = server.__enter__()
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL could not start: {exc}")
        pytest.skip(f"PostgreSQL could not start: {exc}")
    try:
        yield url
    finally:
        server.__exit__(None, None, None)


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> str:
    """A new empty database on the session's PostgreSQL server, for one test."""
    import asyncio

    import asyncpg

    name = f"t_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        conn = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never read the developer's RECEIVER_* variables or .env file."""
    for name in list(os.environ):
        if name.startswith("RECEIVER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "invoice_tokens": TOKEN,
            "deadline": 5.0,
            # Tests send many refused requests from one address; tests/test_ratelimit.py
            # sets its own limits.
            "rate_limit_failures": "100000/minute",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return build


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The service with its configured (fake) backend, under uvicorn, and a client for it."""
    from receiver.app import create_app
    from tests.support.server import serve_app

    async with serve_app(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=15) as client:
            yield client
