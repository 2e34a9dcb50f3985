"""What the first schemathesis runs found, each a 503 before its fix, held on its own."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from receiver.app import create_app
from receiver.settings import Settings
from tests.support.server import serve_app

KEY = "findings-api-key-0123456789"


async def test_a_non_ascii_digit_in_a_page_size_is_a_422(
    make_settings: Callable[..., Settings],
) -> None:
    # "²".isdigit() is True and int("²") raises: it was an unexpected error, a 503.
    async with serve_app(create_app(make_settings(api_key=KEY))) as url:
        async with httpx.AsyncClient(base_url=url, timeout=15) as client:
            auth = {"Authorization": f"Bearer {KEY}"}
            answers = [
                await client.get("/events", params={name: value}, headers=auth)
                for name in ("limit", "before")
                for value in ("²", "١٢", "12")
            ]
    assert [a.status_code for a in answers] == [422, 422, 200, 422, 422, 200]
    assert answers[0].json()["error"]["code"] == "request.validation"


async def test_a_console_event_id_beyond_any_bigint_is_a_404_page(
    make_settings: Callable[..., Settings],
) -> None:
    # 20 digits overflowed the driver's integer (OverflowError): a 503 instead of "no such".
    async with serve_app(create_app(make_settings(api_key=KEY))) as url:
        async with httpx.AsyncClient(base_url=url, timeout=15) as client:
            login = await client.post("/console/login", data={"api_key": KEY})
            assert login.status_code == 303
            page = await client.get("/console/events/99999999999999999999")
            known = await client.get("/console/events/1")
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
    assert known.status_code == 404  # an ordinary unknown id: the same answer
