"""``simulate refund``: a whole offramp refund, Kotani's side played by the imitation.

1. The imitation (``receiver.mock_kotani``) starts in this process, on the port of
   ``RECEIVER_KOTANI_BASE_URL`` when that is a loopback URL (the receiver submits Option B
   invoices there), signing webhooks to the receiver with its first webhook secret.
2. An offramp is created: for Option A with the ``refund_config`` the receiver gives
   (``POST /refund-configs``, ``RECEIVER_API_KEY``); for Option B without one.
3. Its payout fails. Option A: the stored invoice is treated as expired, so the imitation calls
   the generate_invoice_url and judges the answer. Option B: ``invoice_needed`` is sent and the
   receiver submits an invoice, checked by the imitation (exact amount, unexpired, unpaid).
4. The imitation pays the invoice on the receiver's fake node (the same state ``fake pay``
   uses) and sends ``refund.completed``; the receiver confirms the payment with its node.
5. Both timelines are printed, then the refund as ``GET /refunds/{R}`` shows it. Exit 0 when the
   refund is completed, paid, and (Option B) exactly one invoice was submitted.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import uvicorn

from receiver.errors import ConfigError
from receiver.mock_kotani.app import create_mock_app
from receiver.mock_kotani.runner import MockOptions, build
from receiver.mock_kotani.webhooks import Chaos
from receiver.settings import Settings
from receiver.simulate.progress import spinner
from receiver.simulate.target import Target

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class RefundPlay:
    amount_msat: int
    option: str
    chaos: Chaos
    clock_scale: float
    timeout: float
    reference: str | None = None


def mock_port(settings: Settings, option: str) -> int:
    """Where the imitation listens: the receiver's Kotani URL when loopback, else anywhere."""
    url = urlsplit(settings.kotani_base_url)
    if url.scheme == "http" and url.hostname in LOOPBACK and url.port:
        return url.port
    if option == "b":
        raise ConfigError(
            "RECEIVER_KOTANI_BASE_URL: Option B needs the receiver to submit its invoice to the "
            "imitation; start the receiver with RECEIVER_KOTANI_BASE_URL=http://127.0.0.1:8100 "
            "(and any RECEIVER_KOTANI_API_KEY), or use --option a"
        )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _poll_refund(
    http: httpx.AsyncClient, target: Target, ref: str, deadline: float
) -> dict[str, Any] | None:
    view: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        response = await http.get(f"{target.base_url}/refunds/{ref}", headers=target.api_headers())
        if response.status_code == 401:
            raise ConfigError("RECEIVER_API_KEY: the receiver refused it (401)")
        if response.status_code == 200:
            view = response.json()
            refund = view.get("refund") or {}
            if refund.get("state") == "completed" and refund.get("payment") == "paid":
                return view
        await asyncio.sleep(0.2)
    return view


def _at(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def timeline(kotani: list[dict[str, Any]], receiver: dict[str, Any] | None) -> list[str]:
    rows = [(_at(r["at"]), "kotani  ", str(r["what"]).removeprefix("kotani: ")) for r in kotani]
    for step in (receiver or {}).get("history", []):
        detail = f" ({step['detail']})" if step.get("detail") else ""
        rows.append((_at(step["at"]), "receiver", f"{step['action']}{detail}"))
    rows.sort(key=lambda row: row[0])
    start = rows[0][0] if rows else 0.0
    return [f"{(at - start) * 1000:>8.0f} ms  {who}  {what[:150]}" for at, who, what in rows]


async def play_refund(settings: Settings, target: Target, play: RefundPlay) -> int:
    if "fake" not in settings.backends:
        raise ConfigError("RECEIVER_BACKENDS: simulate refund pays on the fake node; use fake")
    if target.webhook_secret is None:
        raise ConfigError("RECEIVER_WEBHOOK_SECRETS: set a secret on the receiver and here")
    headers = target.api_headers()
    port = mock_port(settings, play.option)
    ref = play.reference or f"SIM-{secrets.token_hex(5)}"
    api_key = settings.kotani_api_key.get_secret_value() if settings.kotani_api_key else None
    with tempfile.TemporaryDirectory(prefix="mock-kotani-") as scratch:
        mock = await build(
            MockOptions(
                data_dir=Path(scratch),
                api_key=api_key,
                webhook_url=target.webhook_url,
                webhook_secret=target.webhook_secret,
                network=settings.network,
                clock_scale=play.clock_scale,
                chaos=play.chaos,
                pay_fake_node=settings.data_dir,
            ),
            Path(scratch),
        )
        server = uvicorn.Server(
            uvicorn.Config(
                create_mock_app(mock),
                host="127.0.0.1",
                port=port,
                log_level="warning",
                access_log=False,
                log_config=None,
            )
        )
        serving = asyncio.create_task(server.serve())
        try:
            while not server.started:
                if serving.done():
                    raise ConfigError(f"the imitation could not listen on 127.0.0.1:{port}")
                await asyncio.sleep(0.02)
            kotani = f"http://127.0.0.1:{port}"
            bearer = {"Authorization": f"Bearer {api_key or 'simulate'}"}
            async with httpx.AsyncClient(timeout=15) as http, spinner("refund") as progress:
                offramp: dict[str, Any] = {
                    "cryptoAmount": play.amount_msat,
                    "currency": "KES",
                    "chain": "LIGHTNING",
                    "token": "MSAT",
                    "referenceId": ref,
                }
                if play.option == "a":
                    progress.step("asking the receiver for a refund_config")
                    answer = await http.post(
                        f"{target.base_url}/refund-configs",
                        json={"amount_msat": play.amount_msat, "reference_id": ref},
                        headers=headers,
                    )
                    if answer.status_code != 200:
                        print(f"POST /refund-configs: HTTP {answer.status_code} {answer.text}")
                        return 1
                    offramp["refund_config"] = answer.json()
                created = await http.post(f"{kotani}/api/v3/offramp", json=offramp, headers=bearer)
                if created.status_code != 201:
                    print(f"offramp create: HTTP {created.status_code} {created.text}")
                    return 1
                await http.post(
                    f"{kotani}/_mock/offramps/{ref}/fail-payout",
                    json={"stored_invoice_expired": play.option == "a"},
                )
                progress.step(f"Option {play.option.upper()} refund of {ref}")
                view = await _poll_refund(http, target, ref, time.monotonic() + play.timeout)
                status = (
                    await http.get(f"{kotani}/api/v3/offramp/refund-status/{ref}", headers=bearer)
                ).json()["data"]
                kotani_steps = (
                    await http.get(f"{kotani}/_mock/timeline", params={"reference": ref})
                ).json()["data"]
        finally:
            server.should_exit = True
            await serving
    print(f"simulate refund {ref}: Option {play.option.upper()}, {play.amount_msat} msat")
    for line in timeline(kotani_steps, view):
        print(line)
    refund = (view or {}).get("refund") or {}
    print(
        f"receiver: state={refund.get('state')} payment={refund.get('payment')} "
        f"submissions={refund.get('submissions')}; kotani: refundStatus="
        f"{status.get('refundStatus')} invoices accepted={status.get('submissions')}"
    )
    completed = refund.get("state") == "completed" and refund.get("payment") == "paid"
    once = play.option == "a" or status.get("submissions") == 1
    if not completed:
        print("FAILED: the refund did not end completed and paid within the timeout")
    elif not once:
        print(f"FAILED: Kotani accepted {status.get('submissions')} invoices, expected 1")
    return 0 if completed and once and status.get("refundStatus") == "SUCCESSFUL" else 1
