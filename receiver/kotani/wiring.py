"""The Kotani area inside the running service: client, bridge service and the opt-in keeper.

``open_kotani(services)`` is called from the app's lifespan once the shared services are open. It
builds one ``KotaniClient`` and one ``BridgeService`` and, when ``RECEIVER_BRIDGE_KEEPER=true``,
runs the ``BridgeKeeper`` (every ``RECEIVER_BRIDGE_POLL_INTERVAL`` seconds) under leadership
(``receiver.db.leader``): on PostgreSQL one replica polls Kotani at a time, and another takes
over within seconds when it stops or dies. All of it is closed through ``services.stack``, the
keeper first (its lock is released at once, so another replica takes over on its next retry).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from receiver.db.leader import Leadership, leadership
from receiver.kotani.bridge import BridgeKeeper, BridgeService, Publish
from receiver.kotani.client import KotaniClient
from receiver.kotani.store import BridgeStore
from receiver.lightning.base import Network
from receiver.logs import get_logger
from receiver.settings import KOTANI_HOSTS, Settings

if TYPE_CHECKING:
    from receiver.services import Services

log = get_logger("kotani")


@dataclass
class KotaniArea:
    """What the app keeps of the Kotani area (``app.state.kotani``)."""

    client: KotaniClient
    bridge: BridgeService
    keeper: Leadership | None = None
    """The keeper's leadership when ``RECEIVER_BRIDGE_KEEPER`` is on (``keeper.is_leader``)."""


def expected_refund_network(settings: Settings) -> Network | None:
    """Kotani's production refund invoices are mainnet; the sandbox's network is undocumented."""
    return Network.BITCOIN if settings.kotani_base_url == KOTANI_HOSTS["production"] else None


async def open_kotani(services: Services, *, publish: Publish | None = None) -> KotaniArea:
    """Build the area for ``services``; its clean-up is pushed on ``services.stack``."""
    settings = services.settings
    client = KotaniClient.from_settings(settings)
    services.stack.push_async_callback(client.aclose)
    bridge = BridgeService(
        client,
        BridgeStore(services.db),
        network=expected_refund_network(settings),
        publish=publish,
    )
    area = KotaniArea(client=client, bridge=bridge)
    if settings.bridge_keeper:
        if settings.kotani_api_key is None:
            log.warning("bridge.keeper_disabled", reason="RECEIVER_KOTANI_API_KEY is not set")
            return area
        keeper = BridgeKeeper(bridge, settings.bridge_poll_interval)
        area.keeper = leadership(services.db.url, "bridge-keeper", keeper.run)
        area.keeper.start()  # returns at once: leading is decided in the background
        services.stack.push_async_callback(area.keeper.aclose)
    return area
