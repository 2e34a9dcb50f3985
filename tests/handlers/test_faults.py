"""Faults inside the service are 503s with a code, never 500s, and lose nothing accepted."""

from __future__ import annotations

import httpx

from receiver.app import create_app
from receiver.settings import Settings
from tests.conftest import TOKEN
from tests.support.server import serve_app

BODY = {"amount_msat": 1000, "reference_id": "R"}


async def test_unexpected_exception_is_503_with_code(settings: Settings) -> None:
    app = create_app(settings)
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url) as client:

        async def explode(*args: object, **kwargs: object) -> None:
            raise RuntimeError("a bug")

        app.state.services.invoices.get_or_mint = explode
        response = await client.post(f"/invoices/{TOKEN}", json=BODY)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "internal.unexpected"
    assert "a bug" not in response.text
    assert response.headers["retry-after"] == "5"


async def test_database_failure_is_storage_unavailable(settings: Settings) -> None:
    app = create_app(settings)
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url) as client:
        services = app.state.services
        async with services.db.engine.begin() as conn:
            await conn.exec_driver_sql("DROP TABLE mint_leases")
        response = await client.post(f"/invoices/{TOKEN}", json=BODY)
        ready = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "storage.unavailable"
    assert ready.status_code == 200  # the database still answers; only the table is gone
