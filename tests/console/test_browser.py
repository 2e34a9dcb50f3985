"""The console in a real browser: Playwright driving Debian's Chromium against the live service.

Chromium comes from Debian (``apt-get install chromium``; ``playwright install`` cannot download
browsers here). Without /usr/bin/chromium these tests skip, except in CI where they fail.
Screenshots of the main pages go to ``docs/console/`` when ``CONSOLE_SCREENSHOTS`` is set.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.console.conftest import API_KEY, Live

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path(__file__).parents[2] / "docs" / "console"
HAVE_CHROMIUM = CHROMIUM.exists()

async_api = pytest.importorskip("playwright.async_api")


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not HAVE_CHROMIUM:
        message = f"{CHROMIUM} is missing: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    async with async_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def shot(page: Any, name: str) -> None:
    if os.environ.get("CONSOLE_SCREENSHOTS"):
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def test_operator_follows_refunds_and_replays_a_dead_delivery(
    browser: Any, seeded: Live
) -> None:
    context = await browser.new_context(viewport={"width": 1100, "height": 800})
    page = await context.new_page()
    expect = async_api.expect

    # Without a session: the login form, and no data.
    await page.goto(f"{seeded.url}/console/events?status=dead")
    await expect(page).to_have_url(re.compile(r"/console/login$"))
    await expect(page.get_by_text("TXN-DEAD")).to_have_count(0)
    await shot(page, "login")

    await page.get_by_label("API key").fill("not-the-key")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("alert")).to_have_text("Wrong API key.")
    await page.get_by_label("API key").fill(API_KEY)
    await page.get_by_role("button", name="Log in").click()

    # The refunds of the seeded events, by reference id.
    await expect(page.get_by_role("heading", name="Refunds")).to_be_visible()
    for reference in ("TXN-A", "TXN-B", "TXN-C", "TXN-DEAD"):
        await expect(page.get_by_role("link", name=reference, exact=True)).to_be_visible()
    await shot(page, "refunds")

    # Search, then a refund's timeline and invoice.
    await page.get_by_label("Reference or payment hash").fill("TXN-A")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_role("link", name="TXN-B", exact=True)).to_have_count(0)
    await page.get_by_role("link", name="TXN-A", exact=True).click()
    await expect(page.get_by_role("heading", name="Refund TXN-A")).to_be_visible()
    timeline = page.locator("ol.timeline")
    await expect(timeline).to_contain_text("invoice.submitted")
    await expect(timeline).to_contain_text("refund.completed")
    await expect(page.locator(".invoice svg")).to_be_visible()
    await shot(page, "refund")

    # Deliveries filtered by status.
    await page.get_by_role("link", name="Deliveries").click()
    await page.get_by_label("Status").select_option("dead")
    await page.get_by_role("button", name="Filter").click()
    await expect(page).to_have_url(re.compile(r"status=dead"))
    rows = page.locator("tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("TXN-DEAD")
    await expect(rows.first).to_contain_text("401")
    await shot(page, "deliveries")

    # Kotani takes our key again; Replay: the delivery is handled again and is done.
    seeded.kotani.refuse.clear()
    await page.goto(f"{seeded.url}/console/events?status=dead")
    await rows.first.get_by_role("button", name=re.compile("Replay")).click()
    await expect(page.get_by_role("status")).to_contain_text("queued for replay")
    await page.goto(f"{seeded.url}/console/events?reference=TXN-DEAD")
    done = page.locator("tbody tr").filter(has_text="refund.lightning.invoice_needed")
    for _ in range(100):
        if await done.locator(".badge.done").count():
            break
        await page.wait_for_timeout(100)
        await page.reload()
    await expect(done.locator(".badge")).to_have_text("done")
    assert [ref for ref, _ in seeded.kotani.submitted].count("TXN-DEAD") == 1
    await page.goto(f"{seeded.url}/console/refunds/TXN-DEAD")
    await expect(page.locator(".facts .badge")).to_have_text("invoice_submitted")

    await page.goto(f"{seeded.url}/console/backends")
    await expect(page.get_by_role("cell", name="fake", exact=True)).to_be_visible()
    await shot(page, "backends")

    # Phone-sized screen: the refunds list still reads.
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.goto(f"{seeded.url}/console/")
    await expect(page.get_by_role("link", name="TXN-A", exact=True)).to_be_visible()
    await shot(page, "refunds-phone")

    # Logging out ends it; the pages go back to the login form.
    await page.get_by_role("button", name="Log out").click()
    await page.goto(f"{seeded.url}/console/")
    await expect(page).to_have_url(re.compile(r"/console/login$"))
    await context.close()


async def test_a_forged_form_is_refused_in_the_browser(browser: Any, seeded: Live) -> None:
    """A logged-in browser that posts a replay without the session's CSRF token gets a 403."""
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{seeded.url}/console/login")
    await page.get_by_label("API key").fill(API_KEY)
    await page.get_by_role("button", name="Log in").click()
    await page.goto(f"{seeded.url}/console/events?status=dead")
    form = page.locator("tbody tr").first.locator("form")
    await form.locator("input[name=csrf]").evaluate("e => e.value = 'forged'")
    async with page.expect_response(re.compile(r"/replay$")) as answer:
        await form.get_by_role("button").click()
    assert (await answer.value).status == 403
    await async_api.expect(page.get_by_role("alert")).to_contain_text("CSRF")
    events = (await seeded.api("/events?status=dead"))["events"]
    assert [e["reference_id"] for e in events] == ["TXN-DEAD"]  # still dead, not replayed
    await context.close()
