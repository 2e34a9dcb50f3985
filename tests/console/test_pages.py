"""The console over real HTTP: the door (login, session, CSRF, limits), pages, export, CLI."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from receiver.cli import main
from receiver.console.alerts import Alerter, Checker, Notice
from receiver.console.data import StoreData
from receiver.console.web import form
from receiver.db.leader import Leadership, leadership
from receiver.kotani.bridge_rules import MAX_REGENERATIONS
from receiver.kotani.models import Chain, DepositStatus
from receiver.kotani.models_db import DepositOrigin
from receiver.kotani.store import BridgeStore
from tests.console.conftest import API_KEY, Live

GUARDED_GETS = [
    "/console/",
    "/console/refunds/TXN-A",
    "/console/events?status=dead",
    "/console/events/1",
    "/console/events/replay-dead?since=2020-01-01",
    "/console/backends",
    "/console/refunds/export?format=csv",
]
GUARDED_POSTS = ["/console/events/1/replay", "/console/events/replay-dead", "/console/logout"]


async def login(client: httpx.AsyncClient) -> str:
    """Log ``client`` in; return the session's CSRF token (from a page's hidden field)."""
    response = await client.post("/console/login", data={"api_key": API_KEY})
    assert response.status_code == 303 and response.headers["location"] == "/console/"
    page = await client.get("/console/")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


@pytest.fixture
async def bare(start_live) -> AsyncIterator[Live]:  # type: ignore[no-untyped-def]
    async for live in start_live(seed=False):
        yield live


async def test_nothing_without_a_session(bare: Live) -> None:
    for path in GUARDED_GETS:
        response = await bare.client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/console/login"
    for path in GUARDED_POSTS:
        response = await bare.client.post(path, data={"csrf": "x", "since": "2020-01-01"})
        assert response.status_code == 403, path
    login_page = await bare.client.get("/console/login")
    assert login_page.status_code == 200 and 'type="password"' in login_page.text
    assert "Refunds" not in login_page.text  # no navigation, no data


async def test_forged_expired_or_foreign_cookies_are_refused(bare: Live) -> None:
    await login(bare.client)
    cookie = bare.client.cookies["kr_console"]
    assert (await bare.client.get("/console/")).status_code == 200
    for forged in (cookie[:-2] + "xx", "e30.AAAA.BBBB", "x" * 600):
        bare.client.cookies.set("kr_console", forged, path="/console")
        assert (await bare.client.get("/console/")).status_code == 303


async def test_cookie_attributes(bare: Live) -> None:
    response = await bare.client.post("/console/login", data={"api_key": API_KEY})
    header = response.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=strict" in header and "path=/console" in header
    assert "max-age=28800" in header
    assert "secure" not in header  # plain http here; https requests get Secure
    assert API_KEY not in response.headers["set-cookie"]


async def test_wrong_key_is_401_and_the_login_is_rate_limited(bare: Live) -> None:
    statuses = [
        (await bare.client.post("/console/login", data={"api_key": f"wrong-{i}"})).status_code
        for i in range(11)
    ]
    assert statuses == [401] * 10 + [429]
    # Even the right key waits now: the limit is on the client, not on the guess.
    assert (await bare.client.post("/console/login", data={"api_key": API_KEY})).status_code == 429


async def test_csrf_is_checked_on_every_post(bare: Live) -> None:
    csrf = await login(bare.client)
    event_id = await bare.deliver("refund.failed", {"referenceId": "TXN-F", "status": "FAILED"})
    await bare.settled(event_id)
    for token in (None, "", csrf[:-1] + "A", "x" * 40):
        data = {} if token is None else {"csrf": token}
        response = await bare.client.post(f"/console/events/{event_id}/replay", data=data)
        assert response.status_code == 403 and "CSRF" in response.text
    assert (await bare.api(f"/events/{event_id}"))["attempts"] == 1  # not replayed
    ok = await bare.client.post(f"/console/events/{event_id}/replay", data={"csrf": csrf})
    assert ok.status_code == 303


async def test_an_oversized_form_is_refused_without_reading_it_all() -> None:
    pulled = 0

    async def receive() -> dict[str, object]:  # chunked, endless: no Content-Length to refuse
        nonlocal pulled
        pulled += 1
        return {
            "type": "http.request",
            "body": b"csrf=x&pad=" + b"x" * (1 << 20),
            "more_body": True,
        }

    headers = [(b"content-type", b"application/x-www-form-urlencoded")]
    request = Request({"type": "http", "method": "POST", "headers": headers}, receive)
    assert await form(request) == {}  # a form too long reads as empty: every check refuses it
    assert pulled == 1  # stopped at the bound, not read to the end
    assert await form(request) == {}  # the guard and the page share the one read
    assert pulled == 1


async def test_logout_ends_the_session(bare: Live) -> None:
    csrf = await login(bare.client)
    response = await bare.client.post("/console/logout", data={"csrf": csrf})
    assert response.status_code == 303
    assert (await bare.client.get("/console/")).status_code == 303


async def test_console_is_off_without_an_api_key(start_live) -> None:  # type: ignore[no-untyped-def]
    async for live in start_live(seed=False, api_key=None):
        response = await live.client.post("/console/login", data={"api_key": ""})
        assert response.status_code == 503 and "RECEIVER_API_KEY" in response.text
        assert (await live.client.get("/console/")).status_code == 503


async def test_bad_filters_are_400_pages(bare: Live) -> None:
    await login(bare.client)
    for path in (
        "/console/?state=nope",
        "/console/events?status=nope",
        "/console/events?since=yesterday",
        "/console/refunds/export?format=xml",
    ):
        response = await bare.client.get(path)
        assert response.status_code == 400, path
    assert (await bare.client.get("/console/refunds/NOPE")).status_code == 404
    assert (await bare.client.get("/console/events/999")).status_code == 404


def _rows(text: str) -> dict[str, dict[str, Any]]:
    return {row["reference_id"]: row for row in csv.DictReader(io.StringIO(text))}


EXPECTED_MISMATCH = {
    "TXN-A": "kotani_paid_node_unpaid",
    "TXN-B": "node_paid_kotani_open",
    "TXN-C": "",
    "TXN-DEAD": "",
}


async def test_seeded_run_pages_and_export(seeded: Live) -> None:
    client = seeded.client
    csrf = await login(client)
    page = (await client.get("/console/")).text
    for reference in EXPECTED_MISMATCH:
        assert reference in page
    assert "21" in page and "21000" in page  # sats and msat
    only = (await client.get("/console/?state=completed")).text
    assert "TXN-A" in only and "TXN-C" in only and "TXN-B" not in only
    assert "TXN-B" in (await client.get("/console/?q=XN-B")).text

    timeline = (await client.get("/console/refunds/TXN-A")).text
    assert "invoice.submitted" in timeline and "refund.completed" in timeline
    assert "<svg" in timeline and "invoice minted by fake" in timeline

    dead = (await client.get("/console/events?status=dead")).text
    assert "TXN-DEAD" in dead and "TXN-A" not in dead

    download = await client.get("/console/refunds/export?format=csv")
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    rows = _rows(download.text)
    assert {ref: row["mismatch"] for ref, row in rows.items()} == EXPECTED_MISMATCH
    assert rows["TXN-A"]["kotani_status"] == "REVERSED" and rows["TXN-A"]["amount_msat"] == "21000"
    assert rows["TXN-B"]["paid_at"] and rows["TXN-B"]["submitted_at"]
    assert rows["TXN-DEAD"]["state"] == "action_required"  # Kotani refused our key

    # "Replay all dead since": a confirmation first, then the replay.
    confirm = await client.get("/console/events/replay-dead?since=2020-01-01")
    assert "Replay 1" in confirm.text
    seeded.kotani.refuse.clear()
    dead_id = int(re.search(r'href="/console/events/(\d+)"', confirm.text).group(1))  # type: ignore[union-attr]
    response = await client.post(
        "/console/events/replay-dead", data={"csrf": csrf, "since": "2020-01-01", "confirm": "yes"}
    )
    assert response.status_code == 303 and "1+dead" in response.headers["location"]
    assert (await seeded.settled(dead_id))["status"] == "done"
    assert (await seeded.api("/refunds/TXN-DEAD"))["refund"]["state"] == "invoice_submitted"


async def test_cli_export_lists_every_refund_with_its_mismatch(
    seeded: Live, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = seeded.app.state.services.settings
    monkeypatch.setenv("RECEIVER_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("RECEIVER_DATA_DIR", str(settings.data_dir))
    assert await asyncio.to_thread(main, ["refunds", "export", "--format", "csv"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert {ref: row["mismatch"] for ref, row in rows.items()} == EXPECTED_MISMATCH
    export = ["refunds", "export", "--format", "json", "--state", "completed"]
    assert await asyncio.to_thread(main, export) == 0
    assert '"TXN-A"' in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["refunds", "export", "--since", "nope"]) == 2


async def test_secure_cookie_behind_a_trusted_https_proxy(start_live) -> None:  # type: ignore[no-untyped-def]
    async for live in start_live(seed=False, trusted_proxies="127.0.0.1"):
        response = await live.client.post(
            "/console/login", data={"api_key": API_KEY}, headers={"X-Forwarded-Proto": "https"}
        )
        assert response.status_code == 303
        assert "secure" in response.headers["set-cookie"].lower()


async def test_seeded_incidents(seeded: Live) -> None:
    data = StoreData.of_app(seeded.app.state)
    found = await data.incidents(timedelta(0))
    dead = (await seeded.api("/events?status=dead"))["events"]
    assert set(found) == {f"dead:{dead[0]['id']}", "kotani_auth"}
    assert "TXN-DEAD" in found[f"dead:{dead[0]['id']}"]


async def test_export_on_postgresql(start_live, fresh_postgres_url: str) -> None:  # type: ignore[no-untyped-def]
    async for live in start_live(database_url=fresh_postgres_url):
        await login(live.client)
        rows = _rows((await live.client.get("/console/refunds/export?format=csv")).text)
        assert {ref: row["mismatch"] for ref, row in rows.items()} == EXPECTED_MISMATCH
        page = (await live.client.get("/console/?q=TXN&state=completed&since=2020-01-01")).text
        assert "TXN-A" in page and "TXN-B" not in page
        assert "TXN-DEAD" in (await live.client.get("/console/events?since=2020-01-01")).text
        timeline = (await live.client.get("/console/refunds/TXN-C")).text
        assert "payment.paid" in timeline
        await one_alert_checker_of_two(StoreData.of_app(live.app.state), fresh_postgres_url)


async def one_alert_checker_of_two(data: StoreData, url: str) -> None:
    """Two replicas' alert checkers on one database: one checks (and alerts), the other waits,
    and takes over when the first stops."""
    sent: dict[str, list[str]] = {"first": [], "second": []}
    second_sent = asyncio.Event()
    alerters: list[Alerter] = []

    def checker(name: str) -> Leadership:
        async def send(notice: Notice) -> bool:
            sent[name].append(notice.key)
            if name == "second":
                second_sent.set()
            return True

        alerters.append(alerter := Alerter(send))
        alerter.start()
        check = Checker(data, alerter, unsubmitted_after=timedelta(0), interval=0.05)
        lead = leadership(url, "alerts", check.run, retry=0.05)
        lead.start()
        return lead

    first = checker("first")
    await asyncio.sleep(0.3)
    second = checker("second")
    try:
        await asyncio.sleep(0.5)
        assert any(key.startswith("dead:") for key in sent["first"])
        assert sent["second"] == []  # another replica: it does not send
        await first.aclose()
        async with asyncio.timeout(10):
            await second_sent.wait()
    finally:
        await first.aclose()
        await second.aclose()
        for alerter in alerters:
            await alerter.stop()


async def test_backends_and_bridge_deposits(bare: Live) -> None:
    now = datetime.now(UTC)
    store = BridgeStore(bare.app.state.services.db)
    await store.ensure("BRIDGE-1", DepositOrigin.WATCHED, now=now)
    await store.record_status(
        "BRIDGE-1", chain=Chain.CELO, status=DepositStatus.DEPOSIT_CONFIRMED, now=now
    )
    await login(bare.client)
    page = (await bare.client.get("/console/backends")).text
    row = page[page.index("BRIDGE-1") :].split("</tr>")[0]
    assert "DEPOSIT_CONFIRMED" in row and "CELO" in row
    assert f'<td class="num">{MAX_REGENERATIONS}</td>' in row  # none used yet
    backend = page[page.index("<td>fake</td>") :].split("</tr>")[0]
    assert "yes" in backend and "regtest" in backend and "closed" in backend
