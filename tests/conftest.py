"""Shared fixtures: settings on a temporary data dir, the fake backend, a live server."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from receiver.settings import Settings

TOKEN = "test-token-0123456789abcdef"


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
