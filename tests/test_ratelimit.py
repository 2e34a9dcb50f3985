"""Rate limits: failures are counted per client IP and answered 429 before the body is read;
Kotani's calls with a valid token are limited per token, never by someone else's failures."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from receiver.app import create_app
from receiver.ratelimit import parse_limit
from receiver.settings import Settings
from tests.conftest import TOKEN
from tests.support.server import serve_app

SECRET = "whsec_rate_limit_test_0123456789"
BOGUS = {"X-Kotani-Signature": "sha256=" + "00" * 32, "Content-Type": "application/json"}
BODY = {"amount_msat": 1000, "reference_id": "R-1"}


async def test_failures_of_an_ip_turn_into_429_before_the_body_is_read(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(webhook_secrets=SECRET, rate_limit_failures="5/minute")
    async with serve_app(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        body = b'{"event":"refund.completed","data":{"referenceId":"X"}}'
        statuses = [
            (await client.post("/webhooks/kotani", content=body, headers=BOGUS)).status_code
            for _ in range(5)
        ]
        assert statuses == [401] * 5
        blocked = await client.post("/webhooks/kotani", content=body, headers=BOGUS)
        assert blocked.status_code == 429
        assert blocked.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(blocked.headers["retry-after"]) <= 60
        # A body over every size limit is not even looked at: 429, not 413.
        huge = await client.post("/webhooks/kotani", content=b"x" * 2_000_000, headers=BOGUS)
        assert huge.status_code == 429
        # Kotani's generate_invoice_url calls with the valid token still go through,
        # and the cheap probes are never limited.
        for _ in range(3):
            assert (await client.post(f"/invoices/{TOKEN}", json=BODY)).status_code == 200
        assert (await client.get("/readyz")).status_code == 200


async def test_unknown_invoice_tokens_count_as_failures(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(rate_limit_failures="3/minute")
    async with serve_app(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        wrong = [
            (await client.post(f"/invoices/wrong-token-{i:012d}", json=BODY)).status_code
            for i in range(4)
        ]
        assert wrong == [404, 404, 404, 429]
        assert (await client.post(f"/invoices/{TOKEN}", json=BODY)).status_code == 200


async def test_a_valid_token_is_limited_per_token(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(rate_limit_token="3/minute")
    async with serve_app(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        statuses = [
            (await client.post(f"/invoices/{TOKEN}", json=BODY)).status_code for _ in range(4)
        ]
    assert statuses == [200, 200, 200, 429]


@pytest.mark.parametrize("text", ["abc", "10/fortnight", ""])
def test_bad_rate_setting_is_one_line(make_settings: Callable[..., Settings], text: str) -> None:
    from receiver.errors import ConfigError
    from receiver.settings import load_settings

    with pytest.raises(ConfigError, match="RECEIVER_RATE_LIMIT_TOKEN: use a rate"):
        load_settings(_env_file=None, rate_limit_token=text)
    assert parse_limit("30/minute").amount == 30
