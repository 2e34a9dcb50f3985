"""The webhook pipeline of one process: inbox, worker, forwarder and Kotani client, opened and
closed together by the app's lifespan (``open_webhooks(services)``).

The app passes the one Kotani client its composition root built (``open_kotani``); standalone
(tests, CLI) the pipeline builds and closes its own. Shutdown order: the inbox writer first
(every delivery in hand is committed and answered), then the worker (the events in hand
finish), then the forwarder.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from receiver.errors import ConfigError
from receiver.handlers.events import handler_for
from receiver.handlers.events.base import EventContext
from receiver.handlers.events.hints import hint_handler
from receiver.handlers.events.invoice_needed import EVENT_TYPE as INVOICE_NEEDED
from receiver.inbox.forwarder import Forwarder
from receiver.inbox.store import Inbox
from receiver.inbox.worker import Worker
from receiver.kotani.client import KotaniClient
from receiver.logs import get_logger
from receiver.refunds.store import RefundStore
from receiver.retry import RetryPolicy
from receiver.services import Services
from receiver.webhooks import standard

log = get_logger("webhooks")


@dataclass
class WebhookRuntime:
    """What the webhook routes and the internal API use."""

    services: Services
    inbox: Inbox
    worker: Worker
    forwarder: Forwarder | None
    kotani: KotaniClient | None


def owner_id() -> str:
    """Who holds a lease: host, pid and a random suffix (pids are reused after restarts)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


@asynccontextmanager
async def open_webhooks(
    services: Services,
    *,
    start: bool = True,
    kotani: KotaniClient | None = None,
    kotani_transport: httpx.AsyncBaseTransport | None = None,
    forward_transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[WebhookRuntime]:
    """Build the pipeline from ``services.settings``; ``start=False`` leaves the loops off."""
    settings = services.settings
    forwarder: Forwarder | None = None
    owner = owner_id()
    if settings.forward_url is not None:
        if settings.forward_secret is None:
            raise ConfigError("RECEIVER_FORWARD_SECRET: required with RECEIVER_FORWARD_URL")
        forwarder = Forwarder(
            services.db,
            url=str(settings.forward_url),
            key=standard.decode_secret(settings.forward_secret),
            owner=owner,
            lease=settings.worker_lease,
            transport=forward_transport,
            pause=lambda: inbox.under_pressure(),  # bound late: the inbox is made below
        )
    has_key = settings.kotani_api_key is not None and settings.kotani_api_key.get_secret_value()
    own_client = kotani is None and bool(has_key)
    if not has_key:
        kotani = None  # no API key: nothing is sent to Kotani
    elif own_client:
        # Standalone (tests, CLI); the app passes the one client its composition root built.
        kotani = KotaniClient.from_settings(settings, kotani_transport)

    def wake() -> None:
        worker.wake()
        if forwarder is not None:
            forwarder.wake()

    inbox = Inbox(
        services.db,
        owner=owner,
        lease=settings.worker_lease,
        policy=RetryPolicy(max_attempts=settings.worker_max_attempts),
        # Kotani sends invoice_needed once: it is retried until it succeeds (or is refused).
        policies={INVOICE_NEEDED: RetryPolicy(max_attempts=None)},
        forward=forwarder is not None,
        on_accept=wake,
    )
    worker = Worker(
        inbox,
        EventContext(
            settings=settings,
            invoices=services.invoices,
            kotani=kotani,
            refunds=RefundStore(services.db),
        ),
        handlers=handler_for,
        unverified=hint_handler(),
        concurrency=settings.worker_concurrency,
    )
    runtime = WebhookRuntime(services, inbox, worker, forwarder, kotani)
    if start:
        worker.start()
        if forwarder is not None:
            forwarder.start()
    if not settings.webhook_secrets and not settings.allow_unsigned:
        log.warning(
            "webhooks.no_secret",
            hint="RECEIVER_WEBHOOK_SECRETS is empty: /webhooks/kotani refuses every delivery",
        )
    log.info(
        "webhooks.started",
        signed=len(settings.webhook_secrets),
        allow_unsigned=settings.allow_unsigned,
        forwarding=forwarder is not None,
        kotani_api=kotani is not None,
        internal_api=settings.api_key is not None,
    )
    try:
        yield runtime
    finally:
        await inbox.aclose()
        # The second half of RECEIVER_SHUTDOWN_GRACE (uvicorn used the first on requests in
        # flight): events in hand finish, the rest are released for another replica at once.
        grace = settings.shutdown_grace / 2
        await asyncio.gather(
            worker.stop(grace), *([forwarder.stop(grace)] if forwarder is not None else [])
        )
        if own_client and kotani is not None:
            await kotani.aclose()
        log.info("webhooks.stopped")
