"""GET /metrics: Prometheus text with the service's families, optional bearer token."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from receiver.app import create_app
from receiver.metrics import Snapshot, render
from receiver.settings import Settings
from tests.conftest import TOKEN
from tests.support.server import serve_app

Found = dict[str, list[tuple[dict[str, str], float]]]


def families(text: str) -> Found:
    return {
        f.name: [(dict(s.labels), s.value) for s in f.samples]
        for f in text_string_to_metric_families(text)
    }


def value(found: Found, name: str, **labels: str) -> float:
    samples = found.get(name, [])
    return sum(v for lab, v in samples if all(lab.get(k) == w for k, w in labels.items()))


async def test_requests_are_counted_by_outcome_and_route(settings: Settings) -> None:
    async with serve_app(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        before = families((await client.get("/metrics")).text)
        body = {"amount_msat": 2000, "reference_id": "M-1"}
        await client.post(f"/invoices/{TOKEN}", json=body)
        await client.post(f"/invoices/{TOKEN}", json=body)  # same again: reused
        await client.post(f"/invoices/{TOKEN}", json={"amount_msat": 1.5, "reference_id": "x"})
        await client.post("/invoices/not-the-token-000000000", json=body)
        answer = await client.get("/metrics")
    assert answer.headers["content-type"].startswith("text/plain")
    after = families(answer.text)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("receiver_invoice_requests", outcome="minted") == 1
    assert delta("receiver_invoice_requests", outcome="reused") == 1
    assert delta("receiver_invoice_requests", outcome="refused") == 1
    assert delta("receiver_http_responses", route="/invoices/{token}", status="200") == 2
    assert delta("receiver_http_responses", route="/invoices/{token}", status="404") == 1
    assert TOKEN not in answer.text and "not-the-token" not in answer.text
    assert "receiver_queue_depth" in after and "receiver_refunds" in after


async def test_metrics_token_is_required_when_set(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(metrics_token="metrics-token-0123456789")
    async with serve_app(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        refused = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        ok = await client.get(
            "/metrics", headers={"Authorization": "Bearer metrics-token-0123456789"}
        )
    assert refused.status_code == 401 and wrong.status_code == 401
    assert ok.status_code == 200 and "receiver_http_responses_total" in ok.text


def test_snapshot_is_rendered_as_gauges() -> None:
    text = render(
        Snapshot(
            queue_depth={("inbox", "pending"): 3, ("outbox", "dead"): 1},
            oldest_pending_seconds={"inbox": 12.5},
            refunds={"action_required": 2},
            invoice_needed_oldest_seconds=700.0,
        )
    ).decode()
    found = families(text)
    assert value(found, "receiver_queue_depth", queue="inbox", status="pending") == 3
    assert value(found, "receiver_queue_depth", queue="outbox", status="dead") == 1
    assert value(found, "receiver_queue_oldest_pending_seconds", queue="inbox") == 12.5
    assert value(found, "receiver_refunds", state="action_required") == 2
    assert value(found, "receiver_invoice_needed_oldest_pending_seconds") == 700.0


async def test_scrape_reads_queue_and_refund_state_from_the_database(
    make_settings: Callable[..., Settings],
) -> None:
    from receiver.webhooks.signature import sign, signed_bytes

    secret = "whsec_metrics_test_0123456789"
    settings = make_settings(webhook_secrets=secret, worker_concurrency=1)
    app = create_app(settings)
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url) as client:
        # Stop the worker so the events stay pending for the scrape.
        await app.state.webhooks.worker.stop()
        for i in range(3):
            message = signed_bytes(
                "refund.lightning.invoice_needed",
                {"referenceId": f"MET-{i}", "amount_msat": 1000 + i},
            )
            headers = {"X-Kotani-Signature": sign(secret, message)}
            answer = await client.post("/webhooks/kotani", content=message, headers=headers)
            assert answer.status_code == 200
        found = families((await client.get("/metrics")).text)
    assert value(found, "receiver_queue_depth", queue="inbox", status="pending") == 3
    assert value(found, "receiver_queue_depth", queue="inbox", status="dead") == 0
    assert value(found, "receiver_invoice_needed_oldest_pending_seconds") >= 0.0
    assert "receiver_refunds" in found
