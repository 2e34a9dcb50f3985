"""Assemble the Kotani imitation: ``MockOptions`` in, a ``MockKotani`` out (CLI and simulate)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from receiver.lightning.base import BackendContext, Network
from receiver.lightning.fake import FakeBackend, FakeConfig
from receiver.mock_kotani.app import MockKotani
from receiver.mock_kotani.refunds import Payer
from receiver.mock_kotani.store import MockStore
from receiver.mock_kotani.webhooks import Chaos, WebhookSender
from receiver.verify import DecodedInvoice


@dataclass(frozen=True)
class MockOptions:
    """Everything the imitation is built from."""

    data_dir: Path | None
    """Where its SQLite file and its own node key live; None: in memory (tests)."""
    api_key: str | None
    webhook_url: str | None
    webhook_secret: str | None
    network: Network
    clock_scale: float = 1.0
    chaos: Chaos = field(default_factory=Chaos)
    pay_fake_node: Path | None = None
    """A receiver's data directory: pay refund invoices on its fake node."""


def fake_node_payer(data_dir: Path, network: Network) -> Payer:
    """Pay on the fake node whose state is in ``data_dir`` (what ``fake pay`` does)."""

    async def pay(invoice: DecodedInvoice) -> str:
        assert invoice.amount_msat is not None
        node = FakeBackend(FakeConfig(), BackendContext(network=network, data_dir=data_dir))
        try:
            return await node.pay(invoice.payment_hash, invoice.amount_msat)
        finally:
            await node.aclose()

    return pay


async def build(options: MockOptions, scratch: Path) -> MockKotani:
    """The imitation, its store opened and its webhook target set (not yet serving)."""
    data_dir = options.data_dir or scratch
    data_dir.mkdir(parents=True, exist_ok=True)
    store = MockStore(None if options.data_dir is None else data_dir / "mock-kotani.sqlite3")
    await store.open()
    if options.webhook_url:
        await store.put(
            "integrator",
            "webhook",
            {
                "webhook_url": options.webhook_url,
                "webhook_secret": options.webhook_secret,
                "webhook_events": None,
            },
        )
    sender = WebhookSender(store, clock_scale=options.clock_scale, chaos=options.chaos)
    payer = (
        None
        if options.pay_fake_node is None
        else fake_node_payer(options.pay_fake_node, options.network)
    )
    return MockKotani(
        store,
        sender,
        api_key=options.api_key,
        payer=payer,
        data_dir=data_dir,
        network=options.network,
    )
