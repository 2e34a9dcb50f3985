"""The reverse proxies whose forwarded headers are believed (``RECEIVER_TRUSTED_PROXIES``).

Only a connection *from* one of these addresses may say who the real client is
(``X-Forwarded-For``, handled by uvicorn's ``ProxyHeadersMiddleware`` inside the app) or which
request id it carries (``X-Request-ID``). Everyone else's such headers are ignored, so a client
cannot pick the IP its rate limits are counted under. Empty (the default): no proxy is trusted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence


class TrustedProxies:
    """Membership test of a peer address in the configured addresses and networks."""

    def __init__(self, entries: Sequence[str]) -> None:
        self.entries = list(entries)
        self._networks = [ipaddress.ip_network(e, strict=False) for e in self.entries]

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __call__(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._networks)
