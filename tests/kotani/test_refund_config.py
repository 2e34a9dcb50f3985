"""Option A: ``refund_config`` as Python API, as ``POST /refund-configs`` and as a CLI command.

The bar: ``kotani-receiver refund-config 1500000 --reference TXN-001`` prints a refund_config
whose bolt11 an independent decoder accepts for exactly 1,500,000 msat and whose
``generate_invoice_url`` answers (with the same invoice: one mint path, idempotent).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from receiver.errors import ValidationFailed
from receiver.kotani.refund_config import contract_json, refund_config
from receiver.services import open_services
from receiver.settings import Settings
from tests.conftest import TOKEN
from tests.support import bolt11_ref

API_KEY = "internal-api-key-0123456789"


async def test_python_api_returns_the_documented_object(settings: Settings) -> None:
    settings = settings.model_copy(update={"public_url": "https://receiver.example.com/"})
    async with open_services(settings) as services:
        config = await refund_config(services, "TXN-001", 1_500_000)
        again = await refund_config(services, "TXN-001", 1_500_000)
        with pytest.raises(ValidationFailed):
            await refund_config(services, "TXN-001", 0)
        with pytest.raises(ValidationFailed):
            await refund_config(services, " ", 1_500_000)
    body = contract_json(config)
    assert set(body) == {
        "bolt11",
        "payment_hash",
        "amount_msat",
        "expires_at",
        "generate_invoice_url",
    }
    assert body["generate_invoice_url"] == f"https://receiver.example.com/invoices/{TOKEN}"
    assert body["amount_msat"] == 1_500_000
    decoded = bolt11_ref.decode(config.bolt11)
    assert decoded.amount_msat == 1_500_000
    assert decoded.payment_hash == body["payment_hash"]
    expires = datetime.fromisoformat(str(body["expires_at"]).replace("Z", "+00:00"))
    assert str(body["expires_at"]).endswith("Z")
    assert expires <= datetime.fromtimestamp(decoded.timestamp + decoded.expiry, UTC)
    assert again.bolt11 == config.bolt11  # idempotent


def _cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    base.update(env)
    return subprocess.run(
        [sys.executable, "-m", "receiver", *args],
        capture_output=True,
        text=True,
        env=base,
        cwd=tmp_path,
        timeout=60,
    )


async def test_cli_refund_config_meets_the_bar(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    from receiver.app import create_app
    from tests.support.server import serve_app

    settings = make_settings()
    async with serve_app(create_app(settings)) as url:
        env = {
            "RECEIVER_DATA_DIR": str(settings.data_dir),
            "RECEIVER_INVOICE_TOKENS": TOKEN,
            "RECEIVER_PUBLIC_URL": url,
        }
        result = await asyncio.to_thread(
            _cli, tmp_path, "refund-config", "1500000", "--reference", "TXN-001", **env
        )
        assert result.returncode == 0, result.stderr
        config = json.loads(result.stdout)
        assert set(config) == {
            "bolt11", "payment_hash", "amount_msat", "expires_at", "generate_invoice_url"
        }  # fmt: skip
        decoded = bolt11_ref.decode(config["bolt11"])
        assert decoded.amount_msat == 1_500_000 == config["amount_msat"]
        assert decoded.payment_hash == config["payment_hash"]
        assert decoded.network == "regtest"
        assert config["generate_invoice_url"] == f"{url}/invoices/{TOKEN}"
        # Kotani calling the URL (its documented request) gets the same, still-valid invoice.
        async with httpx.AsyncClient(timeout=15) as client:
            answer = await client.post(
                config["generate_invoice_url"],
                json={"amount_msat": 1500000, "reference_id": "TXN-001"},
            )
        assert answer.status_code == 200, answer.text
        assert answer.json()["bolt11"] == config["bolt11"]
        assert answer.json()["amount_msat"] == 1_500_000


async def test_refund_configs_endpoint_needs_the_api_key(
    make_settings: Callable[..., Settings],
) -> None:
    from receiver.app import create_app
    from tests.support.server import serve_app

    settings = make_settings(api_key=API_KEY, public_url="https://receiver.example.com")
    body = {"amount_msat": 2_000_000, "reference_id": "TXN-002"}
    async with (
        serve_app(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=15) as client,
    ):
        for headers in (
            {},
            {"Authorization": "Bearer wrong-key"},
            {"Authorization": f"Basic {API_KEY}"},
            {"Authorization": f"Bearer {API_KEY}x"},
        ):
            refused = await client.post("/refund-configs", json=body, headers=headers)
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "auth.unauthorized"
            assert API_KEY not in refused.text
        ok = await client.post(
            "/refund-configs", json=body, headers={"Authorization": f"Bearer {API_KEY}"}
        )
        assert ok.status_code == 200, ok.text
        config = ok.json()
        assert bolt11_ref.decode(config["bolt11"]).amount_msat == 2_000_000
        assert config["generate_invoice_url"] == f"https://receiver.example.com/invoices/{TOKEN}"
        bad = await client.post(
            "/refund-configs",
            json={"amount_msat": 1.5, "reference_id": "TXN-002"},
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
        assert bad.status_code == 422


async def test_refund_configs_endpoint_is_closed_without_a_key(
    make_settings: Callable[..., Settings],
) -> None:
    from receiver.app import create_app
    from tests.support.server import serve_app

    async with (
        serve_app(create_app(make_settings())) as url,
        httpx.AsyncClient(base_url=url, timeout=15) as client,
    ):
        refused = await client.post(
            "/refund-configs",
            json={"amount_msat": 1000, "reference_id": "X"},
            headers={"Authorization": "Bearer anything"},
        )
    assert refused.status_code == 401
