"""Logging: structlog lines with stable event names, and the masking that keeps secrets out.

URL paths that carry a secret (``/invoices/<token>``, ``/webhooks/kotani/<token>``) are logged
as ``/invoices/***``: uvicorn's own access log is off and ``AccessLog`` writes the masked one.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_SECRET_PATH = re.compile(r"^(/invoices/|/webhooks/kotani/)[^/]+")


def mask_path(path: str) -> str:
    """Replace the secret segment of a token-bearing path with ``***``."""
    return _SECRET_PATH.sub(r"\1***", path)


def configure(level: str = "info", fmt: str = "console") -> None:
    """Configure structlog (and the stdlib loggers uvicorn uses) once per process."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(
        level=numeric, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )


def get_logger(name: str) -> Any:
    """A structlog logger bound to a component name."""
    return structlog.get_logger(component=name)


class AccessLog:
    """Pure ASGI middleware: one ``http.request`` line per request, with the path masked."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = get_logger("http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.log.info(
                "http.request",
                method=scope.get("method"),
                path=mask_path(str(scope.get("path", ""))),
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 2),
            )
