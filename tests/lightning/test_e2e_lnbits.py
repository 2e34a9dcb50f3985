"""The whole service (uvicorn) backed by a real LNbits, configured the way an operator would."""

from __future__ import annotations

from collections.abc import Callable

import bolt11
import httpx
import pytest

from receiver.app import create_app
from receiver.settings import Settings
from tests.conftest import TOKEN
from tests.lightning.lnbits_server import LnbitsServer
from tests.support import bolt11_ref
from tests.support.server import serve_app

URL = f"/invoices/{TOKEN}"


@pytest.fixture
def lnbits_env(lnbits: LnbitsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    assert lnbits.account is not None
    monkeypatch.setenv("RECEIVER_LNBITS_URL", lnbits.url)
    monkeypatch.setenv("RECEIVER_LNBITS_KEY", lnbits.account.inkey)
    monkeypatch.setenv("RECEIVER_LNADDRESS", lnbits.lnurlp_url)
    # LNbits on loopback hands out loopback callbacks: a LAN setup, as the egress rules say.
    monkeypatch.setenv("RECEIVER_LNADDRESS_ALLOW_PRIVATE", "true")


async def mint(settings: Settings, amount: int, reference: str) -> httpx.Response:
    async with serve_app(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            return await client.post(URL, json={"amount_msat": amount, "reference_id": reference})


@pytest.mark.parametrize("backend", ["lnbits", "lnaddress"])
@pytest.mark.usefixtures("lnbits_env")
async def test_service_mints_1_5m_msat_through_real_lnbits(
    make_settings: Callable[..., Settings], backend: str
) -> None:
    settings = make_settings(backends=backend, network="bitcoin")
    response = await mint(settings, 1_500_000, f"E2E-{backend}")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["amount_msat"] == 1_500_000
    # Two decoders that share no code with the service's own checks.
    reference = bolt11_ref.decode(answer["bolt11"])
    library = bolt11.decode(answer["bolt11"])
    assert reference.amount_msat == library.amount_msat == 1_500_000
    assert library.currency == "bc"
    assert library.payment_hash == answer["payment_hash"]


@pytest.mark.usefixtures("lnbits_env")
async def test_odd_msat_on_sats_only_first_chain_comes_exact_from_an_msat_backend(
    make_settings: Callable[..., Settings],
) -> None:
    # lnbits is sats-only (skipped), the LNbits Lightning Address rounds to 1 sat (caught by the
    # exact-amount check), the fake node mints exactly 1,001 msat.
    settings = make_settings(backends="lnbits,lnaddress,fake", network="bitcoin")
    response = await mint(settings, 1_001, "E2E-odd")
    assert response.status_code == 200, response.text
    decoded = bolt11.decode(response.json()["bolt11"])
    assert decoded.amount_msat == 1_001


@pytest.mark.usefixtures("lnbits_env")
async def test_same_reference_gets_the_same_lnbits_invoice_while_unpaid(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(backends="lnbits", network="bitcoin")
    async with serve_app(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            body = {"amount_msat": 21_000, "reference_id": "E2E-reuse"}
            first = (await client.post(URL, json=body)).json()
            second = (await client.post(URL, json=body)).json()
    # The reuse path asked LNbits for the invoice's status (pending) before handing it out again.
    assert first == second
    assert bolt11.decode(first["bolt11"]).amount_msat == 21_000
