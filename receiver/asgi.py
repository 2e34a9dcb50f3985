"""The one piece the service's pure-ASGI middlewares share: the status of the response sent."""

from __future__ import annotations

from starlette.types import Message, Send


class StatusRecorder:
    """Wraps ``send``; ``status`` is the response's status once it has started (0 before)."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status = 0

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
        await self._send(message)
