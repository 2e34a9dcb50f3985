"""The Kotani area inside the running service: client, bridge service and the opt-in keeper.

``open_kotani(services)`` is called from the app's lifespan once the shared services are open. It
builds one ``KotaniClient`` and one ``BridgeService`` and, when ``RECEIVER_BRIDGE_KEEPER=true``,
starts the ``BridgeKeeper`` task (every ``RECEIVER_BRIDGE_POLL_INTERVAL`` seconds). All of it is
closed through ``services.stack``, the keeper first.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

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
    keeper_task: asyncio.Task[None] | None = None


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
        stop = asyncio.Event()
        keeper = BridgeKeeper(bridge, settings.bridge_poll_interval)
        area.keeper_task = asyncio.create_task(keeper.run(stop), name="bridge-keeper")

        async def stop_keeper() -> None:
            stop.set()
            assert area.keeper_task is not None
            await area.keeper_task

        services.stack.push_async_callback(stop_keeper)
    return area
