"""Composition: the objects one process shares, built from ``Settings`` and closed together.

``open_services(settings)`` opens the database (applying migrations), builds the backends named
in ``RECEIVER_BACKENDS`` (tests may pass their own), and the invoice service. The app's lifespan
and every CLI command use it, so they see the same wiring.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from receiver.db import Database
from receiver.db.verify_urls import SqlVerifyUrls
from receiver.invoices import InvoiceService
from receiver.lightning.base import BackendContext, LightningBackend
from receiver.lightning.failover import BackendChain
from receiver.lightning.registry import load_backends
from receiver.settings import Settings
from receiver.tokens import TokenSet, resolve_tokens


@dataclass
class Services:
    """What handlers, workers and CLI commands use."""

    settings: Settings
    db: Database
    chain: BackendChain
    invoices: InvoiceService
    tokens: TokenSet
    stack: AsyncExitStack = field(repr=False)
    """Closes everything opened with the services; features add their own clean-ups to it."""


def backend_context(settings: Settings, db: Database | None = None) -> BackendContext:
    """What backends get; with the service's database, where lnaddress keeps verify URLs."""
    return BackendContext(
        network=settings.network,
        data_dir=settings.data_dir,
        verify_urls=SqlVerifyUrls(db) if db is not None else None,
    )


@asynccontextmanager
async def open_services(
    settings: Settings,
    *,
    backends: Sequence[LightningBackend] | None = None,
    migrate: bool = True,
) -> AsyncIterator[Services]:
    """Open the database, the backends and the invoice service; close them on exit."""
    async with AsyncExitStack() as stack:
        db = Database(settings.database_url, **settings.pool_options)
        stack.push_async_callback(db.dispose)
        if migrate:
            await db.upgrade()
        if backends is None:
            backends = load_backends(settings.backends, backend_context(settings, db))
            for backend in backends:
                stack.push_async_callback(backend.aclose)
        chain = BackendChain(
            backends,
            network=settings.network,
            min_validity=settings.min_validity,
            breaker_threshold=settings.breaker_threshold,
            breaker_cooldown=settings.breaker_cooldown,
        )
        # Node identities (payee check on from the first mint); slow nodes keep being asked.
        await chain.start_identity()
        stack.push_async_callback(chain.stop_identity)
        invoices = InvoiceService(
            db,
            chain,
            deadline=settings.deadline,
            expiry=settings.invoice_expiry,
            min_validity=settings.min_validity,
            description=settings.invoice_description,
        )
        stack.push_async_callback(invoices.aclose)
        tokens, _ = resolve_tokens(settings, create=False)
        yield Services(
            settings=settings,
            db=db,
            chain=chain,
            invoices=invoices,
            tokens=TokenSet(tokens),
            stack=stack,
        )
