"""``GET /metrics``: Prometheus text exposition (``receiver.metrics``).

Open by default, like most exporters on a private port; with ``RECEIVER_METRICS_TOKEN`` set it
needs ``Authorization: Bearer <token>`` (compared in constant time), for a service whose only
port faces the internet.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response

from receiver.errors import Unauthorized
from receiver.metrics import CONTENT_TYPE_LATEST, Snapshot, render
from receiver.services import Services


async def metrics(request: Request) -> Response:
    services: Services = request.app.state.services
    token = services.settings.metrics_token
    if token is not None:
        given = request.headers.get("authorization", "")
        expected = f"Bearer {token.get_secret_value()}"
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode()):
            raise Unauthorized("send Authorization: Bearer <RECEIVER_METRICS_TOKEN>")
    snapshot = getattr(request.app.state, "metrics_snapshot", None)
    taken = await snapshot() if snapshot is not None else Snapshot()
    return Response(render(taken), media_type=CONTENT_TYPE_LATEST)
