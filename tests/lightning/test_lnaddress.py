"""LNURL-pay backend against respx: LUD-06 shapes, LUD-21 verify, and what lnurl does not check.

The real-service path (LNbits' Lightning Address) is in test_lnbits_real.py; these cover the
answers LNbits does not give (verify URLs, errors, wrong metadata, callbacks with a query).
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import bolt11
import coincurve
import httpx
import lnurl
import pytest
import respx
from bolt11.models.tags import TagChar, Tags

from receiver.amounts import Msat
from receiver.errors import BackendHostile, BackendProtocolError, BackendRejected, InvalidInvoice
from receiver.lightning.base import BackendContext, InvoiceState
from receiver.lightning.lnaddress import (
    EgressRules,
    LnAddressBackend,
    LnAddressConfig,
    Resolver,
    pay_url,
)

ADDRESS = "refunds@pay.example.com"
WELL_KNOWN = "https://pay.example.com/.well-known/lnurlp/refunds"
CALLBACK = "https://pay.example.com/lnurlp/cb?k1=abc"
VERIFY = "https://pay.example.com/lnurlp/verify/xyz"
METADATA = json.dumps([["text/plain", "Refunds"], ["text/identifier", ADDRESS]])


def pay_request(**overrides: object) -> dict[str, object]:
    answer: dict[str, object] = {
        "tag": "payRequest",
        "callback": CALLBACK,
        "minSendable": 1000,
        "maxSendable": 100_000_000_000,
        "metadata": METADATA,
        "commentAllowed": 0,
        "someVendorExtension": True,
    }
    answer.update(overrides)
    return answer


def invoice(
    key: coincurve.PrivateKey, amount_msat: int, description_hash: str, expiry: int = 3600
) -> tuple[str, str]:
    payment_hash = hashlib.sha256(os.urandom(32)).hexdigest()
    tags = Tags()
    tags.add(TagChar.payment_hash, payment_hash)
    tags.add(TagChar.payment_secret, os.urandom(32).hex())
    tags.add(TagChar.description_hash, description_hash)
    tags.add(TagChar.expire_time, expiry)
    encoded = bolt11.encode(
        bolt11.Bolt11(
            currency="bc",
            amount_msat=bolt11.MilliSatoshi(amount_msat),
            date=int(time.time()),
            tags=tags,
        ),
        key.secret.hex(),
    )
    return encoded, payment_hash


METADATA_HASH = hashlib.sha256(METADATA.encode()).hexdigest()


def resolver(*addresses: str) -> Resolver:
    """A DNS stand-in: every name resolves to ``addresses`` (no lookup leaves the machine)."""

    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


PUBLIC = resolver("93.184.216.34")


def lnaddress(context: BackendContext, *, allow_private: bool = False) -> LnAddressBackend:
    config = LnAddressConfig(lnaddress=ADDRESS, lnaddress_allow_private=allow_private)
    backend = LnAddressBackend(config, context)
    backend.egress.resolve = PUBLIC
    return backend


@pytest.fixture
def backend(context: BackendContext) -> LnAddressBackend:
    return lnaddress(context)


def test_identifiers_resolve_through_lnurl() -> None:
    assert pay_url(ADDRESS) == WELL_KNOWN
    assert pay_url(str(lnurl.encode(WELL_KNOWN))) == WELL_KNOWN
    assert pay_url("lnurlp://pay.example.com/.well-known/lnurlp/refunds") == WELL_KNOWN
    assert pay_url("http://127.0.0.1:5000/.well-known/lnurlp/x").startswith("http://127.0.0.1")
    for bad in ("http://pay.example.com/x", "refunds@127.0.0.1:5000", "not an address", ""):
        with pytest.raises(ValueError, match="localhost"):
            pay_url(bad)


async def test_mint_asks_exact_msat_keeps_callback_query_and_tracks_verify(
    router: respx.MockRouter, backend: LnAddressBackend, node_key: coincurve.PrivateKey
) -> None:
    bolt, payment_hash = invoice(node_key, 1_500_001, METADATA_HASH)
    first = router.get(WELL_KNOWN).respond(200, json=pay_request())
    callback = router.get(url__startswith="https://pay.example.com/lnurlp/cb").respond(
        200, json={"pr": bolt, "routes": [], "verify": VERIFY, "disposable": False}
    )
    verify = router.get(VERIFY).mock(
        side_effect=[
            httpx.Response(200, json={"status": "OK", "settled": False, "pr": bolt}),
            httpx.Response(
                200, json={"status": "OK", "settled": True, "preimage": "aa" * 32, "pr": bolt}
            ),
        ]
    )

    minted = await backend.create_invoice(Msat(1_500_001), "ignored", 3600)
    assert (minted.bolt11, minted.payment_hash) == (bolt, payment_hash)
    asked = callback.calls.last.request
    assert asked.method == "GET"
    assert dict(asked.url.params) == {"k1": "abc", "amount": "1500001"}
    assert first.calls.last.request.method == "GET"

    assert (await backend.invoice_status(payment_hash)).state is InvoiceState.PENDING
    paid = await backend.invoice_status(payment_hash)
    assert paid.state is InvoiceState.PAID and paid.paid_msat == 1_500_001
    assert verify.call_count == 2
    # The payRequest is cached: a second mint asks only the callback.
    await backend.create_invoice(Msat(1_500_001), "ignored", 3600)
    assert first.call_count == 1 and callback.call_count == 2


async def test_without_verify_url_status_is_unknown(
    router: respx.MockRouter, backend: LnAddressBackend, node_key: coincurve.PrivateKey
) -> None:
    bolt, payment_hash = invoice(node_key, 2000, METADATA_HASH)
    router.get(WELL_KNOWN).respond(200, json=pay_request())
    router.get(url__startswith="https://pay.example.com/lnurlp/cb").respond(200, json={"pr": bolt})
    minted = await backend.create_invoice(Msat(2000), "m", 3600)
    assert minted.payment_hash == payment_hash
    assert (await backend.invoice_status(payment_hash)).state is InvoiceState.UNKNOWN


async def test_invoice_not_committing_to_metadata_never_leaves(
    router: respx.MockRouter, backend: LnAddressBackend, node_key: coincurve.PrivateKey
) -> None:
    bolt, _ = invoice(node_key, 2000, hashlib.sha256(b"something else").hexdigest())
    router.get(WELL_KNOWN).respond(200, json=pay_request())
    router.get(url__startswith="https://pay.example.com/lnurlp/cb").respond(200, json={"pr": bolt})
    with pytest.raises(InvalidInvoice) as caught:
        await backend.create_invoice(Msat(2000), "m", 3600)
    assert caught.value.error_code == "backend.invalid_invoice.description_hash"


async def test_wrong_amount_never_leaves(
    router: respx.MockRouter, backend: LnAddressBackend, node_key: coincurve.PrivateKey
) -> None:
    bolt, _ = invoice(node_key, 2001, METADATA_HASH)
    router.get(WELL_KNOWN).respond(200, json=pay_request())
    router.get(url__startswith="https://pay.example.com/lnurlp/cb").respond(200, json={"pr": bolt})
    with pytest.raises(InvalidInvoice) as caught:
        await backend.create_invoice(Msat(2000), "m", 3600)
    assert caught.value.error_code == "backend.invalid_invoice.amount"


async def test_amount_outside_sendable_range_is_refused_without_callback(
    router: respx.MockRouter, backend: LnAddressBackend
) -> None:
    router.get(WELL_KNOWN).respond(200, json=pay_request(minSendable=10_000, maxSendable=20_000))
    for amount in (9_999, 20_001):
        with pytest.raises(BackendRejected, match=r"10000\.\.20000"):
            await backend.create_invoice(Msat(amount), "m", 3600)


async def test_service_errors_keep_their_reason(
    router: respx.MockRouter, backend: LnAddressBackend
) -> None:
    router.get(WELL_KNOWN).respond(200, json=pay_request())
    router.get(url__startswith="https://pay.example.com/lnurlp/cb").respond(
        200, json={"status": "ERROR", "reason": "Wallet is frozen"}
    )
    with pytest.raises(BackendRejected, match="Wallet is frozen"):
        await backend.create_invoice(Msat(2000), "m", 3600)


async def test_unknown_address_error(router: respx.MockRouter, backend: LnAddressBackend) -> None:
    router.get(WELL_KNOWN).respond(200, json={"status": "ERROR", "reason": "unknown user"})
    with pytest.raises(BackendRejected, match="unknown user"):
        await backend.info()


@pytest.mark.parametrize(
    "answer",
    [
        {"tag": "withdrawRequest", "callback": CALLBACK, "k1": "x"},
        pay_request(metadata="not json"),
        pay_request(callback="http://insecure.example.com/cb"),
        pay_request(minSendable=5000, maxSendable=10),
        ["not", "an", "object"],
    ],
)
async def test_invalid_pay_requests_are_protocol_errors(
    router: respx.MockRouter, backend: LnAddressBackend, answer: object
) -> None:
    router.get(WELL_KNOWN).respond(200, json=answer)
    with pytest.raises(BackendProtocolError):
        await backend.create_invoice(Msat(2000), "m", 3600)


async def test_callback_without_invoice(
    router: respx.MockRouter, backend: LnAddressBackend
) -> None:
    router.get(WELL_KNOWN).respond(200, json=pay_request())
    router.get(url__startswith="https://pay.example.com/lnurlp/cb").respond(
        200, json={"pr": "lnbc-not-bech32"}
    )
    with pytest.raises(BackendProtocolError):
        await backend.create_invoice(Msat(2000), "m", 3600)


async def test_requested_description_hash_must_be_the_metadata_hash(
    backend: LnAddressBackend, router: respx.MockRouter, node_key: coincurve.PrivateKey
) -> None:
    router.get(WELL_KNOWN).respond(200, json=pay_request())
    with pytest.raises(BackendRejected, match="metadata"):
        await backend.create_invoice(Msat(2000), "m", 3600, hashlib.sha256(b"x").digest())
    bolt, _ = invoice(node_key, 2000, METADATA_HASH)
    router.get(url__startswith="https://pay.example.com/lnurlp/cb").respond(200, json={"pr": bolt})
    minted = await backend.create_invoice(Msat(2000), "m", 3600, bytes.fromhex(METADATA_HASH))
    assert minted.bolt11 == bolt


async def test_a_redirected_address_is_followed_to_its_pay_request(
    router: respx.MockRouter, backend: LnAddressBackend, node_key: coincurve.PrivateKey
) -> None:
    # Lightning Address hosts often redirect the well-known URL to the wallet service.
    moved = "https://wallet.example.net/lnurlp/refunds"
    router.get(WELL_KNOWN).respond(302, headers={"Location": moved})
    router.get(moved).respond(200, json=pay_request())
    bolt, payment_hash = invoice(node_key, 3000, METADATA_HASH)
    router.get(url__startswith="https://pay.example.com/lnurlp/cb").respond(200, json={"pr": bolt})
    minted = await backend.create_invoice(Msat(3000), "ignored", 3600)
    assert minted.payment_hash == payment_hash


async def test_a_redirect_loop_is_a_protocol_error(
    router: respx.MockRouter, backend: LnAddressBackend
) -> None:
    loop = router.get(WELL_KNOWN).respond(301, headers={"Location": WELL_KNOWN})
    with pytest.raises(BackendProtocolError, match="more than 5 redirects"):
        await backend.create_invoice(Msat(3000), "ignored", 3600)
    assert loop.call_count == 6


@pytest.mark.parametrize(
    ("location", "error", "match"),
    [
        ("http://pay.example.com/lnurlp/x", BackendProtocolError, "from https to http refused"),
        # The egress rules see every redirect target before it is requested.
        ("https://10.0.0.7/lnurlp/x", BackendHostile, "non-public address"),
    ],
    ids=["https-to-http", "to-the-lan"],
)
async def test_a_redirect_is_refused_before_it_is_followed(
    router: respx.MockRouter,
    backend: LnAddressBackend,
    location: str,
    error: type[Exception],
    match: str,
) -> None:
    router.get(WELL_KNOWN).respond(302, headers={"Location": location})
    with pytest.raises(error, match=match):
        await backend.create_invoice(Msat(3000), "ignored", 3600)


def offer_verify(
    router: respx.MockRouter, node_key: coincurve.PrivateKey, verify: str
) -> tuple[str, str]:
    """The service mints a 4000 msat invoice and offers ``verify`` for it (LUD-21)."""
    bolt, payment_hash = invoice(node_key, 4000, METADATA_HASH)
    router.get(WELL_KNOWN).respond(200, json=pay_request())
    router.get(url__startswith="https://pay.example.com/lnurlp/cb").respond(
        200, json={"pr": bolt, "verify": verify}
    )
    return bolt, payment_hash


async def test_verify_urls_outlive_a_restart(
    router: respx.MockRouter, context: BackendContext, node_key: coincurve.PrivateKey
) -> None:
    """Kept in the service's database: a new process (new Database, new backend) knows them."""
    from dataclasses import replace

    from receiver.db import Database
    from receiver.db.verify_urls import SqlVerifyUrls

    bolt, payment_hash = offer_verify(router, node_key, VERIFY)
    verify = router.get(VERIFY).respond(
        200, json={"status": "OK", "settled": True, "preimage": "aa" * 32, "pr": bolt}
    )
    url = f"sqlite+aiosqlite:///{context.data_dir / 'receiver.sqlite3'}"
    db = Database(url)
    await db.upgrade()
    first = lnaddress(replace(context, verify_urls=SqlVerifyUrls(db)))
    try:
        await first.create_invoice(Msat(4000), "ignored", 3600)
    finally:
        await first.aclose()
        await db.dispose()

    db = Database(url)
    restarted = lnaddress(replace(context, verify_urls=SqlVerifyUrls(db)))
    try:
        status = await restarted.invoice_status(payment_hash.upper())
        unknown = await restarted.invoice_status("ef" * 32)
    finally:
        await restarted.aclose()
        await db.dispose()
    assert status.state is InvoiceState.PAID and status.paid_msat == 4000
    assert unknown.state is InvoiceState.UNKNOWN
    assert verify.call_count == 1
    assert not (context.data_dir / "lnaddress-verify.sqlite3").exists()


async def test_without_the_database_verify_urls_live_in_memory(
    router: respx.MockRouter, context: BackendContext, node_key: coincurve.PrivateKey
) -> None:
    bolt, payment_hash = offer_verify(router, node_key, VERIFY)
    router.get(VERIFY).respond(
        200, json={"status": "OK", "settled": False, "preimage": None, "pr": bolt}
    )
    backend = lnaddress(context)
    try:
        await backend.create_invoice(Msat(4000), "ignored", 3600)
        pending = await backend.invoice_status(payment_hash)
    finally:
        await backend.aclose()
    restarted = lnaddress(context)
    try:
        forgotten = await restarted.invoice_status(payment_hash)
    finally:
        await restarted.aclose()
    assert pending.state is InvoiceState.PENDING
    assert forgotten.state is InvoiceState.UNKNOWN


@pytest.mark.parametrize(
    "callback",
    [
        "https://127.0.0.1/cb",
        "https://10.1.2.3/cb",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/cb",
        "https://[::ffff:192.168.1.1]/cb",
        "https://224.0.0.1/cb",
    ],
    ids=["loopback", "private", "link-local", "ipv6-loopback", "mapped-private", "multicast"],
)
async def test_a_callback_to_a_non_public_address_is_never_called(
    router: respx.MockRouter, backend: LnAddressBackend, callback: str
) -> None:
    router.get(WELL_KNOWN).respond(200, json=pay_request(callback=callback))
    with pytest.raises(BackendHostile, match="non-public address"):
        await backend.create_invoice(Msat(3000), "ignored", 3600)
    # assert_all_mocked: a request to the callback would have failed the test on its own.


async def test_a_callback_whose_name_resolves_to_the_lan_is_never_called(
    router: respx.MockRouter, backend: LnAddressBackend
) -> None:
    router.get(WELL_KNOWN).respond(200, json=pay_request(callback="https://intranet.test/cb"))
    backend.egress.resolve = resolver("93.184.216.34", "192.168.0.10")  # one private is enough
    with pytest.raises(BackendHostile, match=r"intranet\.test is a non-public address"):
        await backend.create_invoice(Msat(3000), "ignored", 3600)


async def test_a_verify_url_on_the_lan_is_never_called(
    router: respx.MockRouter, backend: LnAddressBackend, node_key: coincurve.PrivateKey
) -> None:
    _, payment_hash = offer_verify(router, node_key, "https://verify.test/v")
    await backend.create_invoice(Msat(4000), "ignored", 3600)
    backend.egress.resolve = resolver("127.0.0.1")  # the name now points home
    with pytest.raises(BackendHostile, match="non-public address"):
        await backend.invoice_status(payment_hash)


async def test_allow_private_lets_a_lan_callback_through(
    router: respx.MockRouter, context: BackendContext, node_key: coincurve.PrivateKey
) -> None:
    backend = lnaddress(context, allow_private=True)
    bolt, payment_hash = invoice(node_key, 3000, METADATA_HASH)
    router.get(WELL_KNOWN).respond(200, json=pay_request(callback="https://10.1.2.3/cb"))
    router.get(url__startswith="https://10.1.2.3/cb").respond(200, json={"pr": bolt})
    minted = await backend.create_invoice(Msat(3000), "ignored", 3600)
    assert minted.payment_hash == payment_hash


def test_allow_private_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECEIVER_LNADDRESS", ADDRESS)
    monkeypatch.setenv("RECEIVER_LNADDRESS_ALLOW_PRIVATE", "true")
    assert LnAddressConfig(_env_file=None).lnaddress_allow_private is True  # type: ignore[call-arg]
    assert EgressRules().allow_private is False
