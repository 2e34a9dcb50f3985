"""``events list|show|replay`` and ``refunds show``, run as a user runs them (real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from receiver.handlers.events import handler_for
from receiver.inbox.models import EventStatus
from receiver.inbox.worker import Worker
from receiver.runtime import open_webhooks
from receiver.services import open_services
from receiver.settings import Settings
from tests.inbox.conftest import new_event


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    env["RECEIVER_DATA_DIR"] = str(tmp_path / "data")
    return subprocess.run(
        [sys.executable, "-m", "receiver", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )


async def test_events_and_refunds_commands(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings()
    async with open_services(settings) as services, open_webhooks(services, start=False) as rt:
        needed = new_event(
            "refund.lightning.invoice_needed",
            {"referenceId": "CLI-1", "refundAmount": 21000, "refundAmountSats": 21},
        )
        first = (await rt.inbox.accept(needed)).event_id
        second = (
            await rt.inbox.accept(new_event("refund.failed", {"referenceId": "CLI-1"}))
        ).event_id
        worker = Worker(rt.inbox, rt.worker.context, handlers=handler_for)
        assert await worker.drain() == 2

    listed = cli(tmp_path, "events", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    events = json.loads(listed.stdout)
    assert [(e["id"], e["status"]) for e in events] == [(second, "done"), (first, "done")]
    table = cli(tmp_path, "events", "list", "--status", "done")
    assert "refund.lightning.invoice_needed" in table.stdout and "CLI-1" in table.stdout

    shown = json.loads(cli(tmp_path, "events", "show", str(first)).stdout)
    assert shown["body"]["data"]["refundAmount"] == 21000
    assert shown["headers"]["x-kotani-signature"].startswith("sha256=")

    refund = cli(tmp_path, "refunds", "show", "CLI-1")
    assert refund.returncode == 0, refund.stderr
    assert "failed" in refund.stdout and "lnbcrt210n" in refund.stdout
    view = json.loads(cli(tmp_path, "refunds", "show", "CLI-1", "--json").stdout)
    assert [h["action"] for h in view["history"]] == ["invoice.action_required", "refund.failed"]

    replayed = cli(tmp_path, "events", "replay", str(first))
    assert replayed.returncode == 0 and "pending again" in replayed.stdout
    again = json.loads(cli(tmp_path, "events", "show", str(first)).stdout)
    assert (again["status"], again["attempts"]) == (EventStatus.PENDING.value, 0)

    missing = cli(tmp_path, "refunds", "show", "NOPE")
    assert missing.returncode == 1 and "not_found" in missing.stderr
    assert cli(tmp_path, "events", "show", "424242").returncode == 1
