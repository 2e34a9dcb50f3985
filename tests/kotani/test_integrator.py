"""``kotani webhook register|rotate`` against the Kotani imitation and a served receiver."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from receiver.app import create_app
from receiver.kotani.integrator import _register, _rotate
from receiver.lightning.base import Network
from receiver.mock_kotani.app import MockKotani, create_mock_app
from receiver.mock_kotani.runner import MockOptions, build
from receiver.settings import Settings
from tests.support.server import serve_app

OLD, NEW = "whsec_old_secret_1", "whsec_new_secret_2"


@pytest.fixture
async def kotani(tmp_path: Path) -> AsyncIterator[tuple[MockKotani, str]]:
    options = MockOptions(tmp_path / "mock", "k-key", None, None, Network.REGTEST)
    mock = await build(options, tmp_path / "mock")
    async with serve_app(create_mock_app(mock)) as url:
        yield mock, url


def args(**values: Any) -> argparse.Namespace:
    base = {"url": None, "events": None, "secret": None, "new_secret": None, "grace": 3600.0}
    return argparse.Namespace(**{**base, **values})


async def webhook_config(mock: MockKotani) -> dict[str, Any] | None:
    return await mock.store.get("integrator", "webhook")


async def test_register_patches_url_secret_and_events(
    kotani: tuple[MockKotani, str],
    make_settings: Callable[..., Settings],
    capsys: pytest.CaptureFixture[str],
) -> None:
    mock, url = kotani
    settings = make_settings(
        webhook_secrets=OLD,
        kotani_base_url=url,
        kotani_api_key="k-key",
        public_url="https://example.trycloudflare.com",
    )
    assert await _register(args(), settings) == 0
    config = await webhook_config(mock)
    assert config is not None
    assert config["webhook_url"] == "https://example.trycloudflare.com/webhooks/kotani"
    assert config["webhook_secret"] == OLD
    assert "refund.completed" in config["webhook_events"]
    assert OLD not in capsys.readouterr().out, "the secret is masked"


async def test_rotation_has_no_gap(
    kotani: tuple[MockKotani, str],
    make_settings: Callable[..., Settings],
    capsys: pytest.CaptureFixture[str],
) -> None:
    mock, url = kotani
    common = {"kotani_base_url": url, "kotani_api_key": "k-key", "api_key": "a" * 20}
    before = make_settings(webhook_secrets=OLD, **common)
    await _register(args(url="http://127.0.0.1:1/webhooks/kotani"), before)

    # Step 1: only prints what to set; Kotani is not touched.
    assert await _rotate(args(), before) == 0
    printed = capsys.readouterr().out
    line = next(x for x in printed.splitlines() if x.startswith("RECEIVER_WEBHOOK_SECRETS="))
    new = line.split("=", 1)[1].split(",")[0]
    assert line == f"RECEIVER_WEBHOOK_SECRETS={new},{OLD}"
    assert (await webhook_config(mock))["webhook_secret"] == OLD  # type: ignore[index]

    # The receiver still runs with the old secret only: step 2 refuses to switch Kotani.
    async with serve_app(create_app(before)) as receiver:
        after = make_settings(webhook_secrets=f"{NEW},{OLD}", **common)
        hook = f"{receiver}/webhooks/kotani"
        assert await _rotate(args(new_secret=NEW, url=hook), after) == 1
        assert "Kotani was not changed" in capsys.readouterr().err
        assert (await webhook_config(mock))["webhook_secret"] == OLD  # type: ignore[index]
        assert await _rotate(args(new_secret="whsec_unknown", url=hook), after) == 2

    # Restarted with both secrets: the probe passes, then Kotani switches.
    async with serve_app(create_app(after)) as receiver:
        hook = f"{receiver}/webhooks/kotani"
        assert await _rotate(args(new_secret=NEW, url=hook), after) == 0
        config = await webhook_config(mock)
        assert config is not None and config["webhook_secret"] == NEW
        assert config["webhook_url"] == hook
        assert f"\nRECEIVER_WEBHOOK_SECRETS={NEW}\n" in capsys.readouterr().out
        # A delivery Kotani signs from now on is accepted.
        data = {"referenceId": "R-ROT", "status": "PENDING"}
        await mock.sender.emit("transaction.offramp.status.updated", data, "R-ROT")
        for _ in range(300):
            delivered = [d for d in await mock.store.deliveries() if d["status"] == "delivered"]
            if delivered:
                break
            await asyncio.sleep(0.02)
        assert delivered and delivered[0]["last_result"] == "HTTP 200", (
            await mock.store.deliveries()
        )
