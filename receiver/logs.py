"""Logging: structlog lines with stable event names, and the redaction that keeps secrets out.

Two guards, both applied to every line:
- the secret segment of a token-bearing path (``/invoices/<t>``, ``/webhooks/kotani/<t>``, in
  any letter case and with any run of slashes) is written ``***``, so a wrong or unknown token
  is not logged either;
- every configured secret (invoice tokens, webhook secrets, API keys, ...; registered with
  ``redact_secrets`` when the service starts) is replaced by ``***`` wherever it appears in any
  string of any line: a path, a query string, an error message.
uvicorn's own access log is off; ``AccessLog`` writes one line per request.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any
from urllib.parse import unquote

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_SECRET_PATH = re.compile(r"^(/+(?:invoices|webhooks/+kotani)/+)[^/?]+", re.IGNORECASE)
_MIN_SECRET = 6
"""Shorter values are not treated as secrets to mask (they would mask ordinary words)."""

MASK = "***"


def mask_path(path: str) -> str:
    """Replace the secret segment of a token-bearing path with ``***``."""
    return _SECRET_PATH.sub(rf"\1{MASK}", path)


class Redactor:
    """Replaces each of a set of secret strings, wherever it appears, with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = sorted({s for s in secrets if len(s) >= _MIN_SECRET}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, values))) if values else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern is not None else text

    def value(self, value: Any) -> Any:
        """``value`` with every string inside it (dicts, lists, tuples) redacted."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.value(v) for v in value)
        return value


_registered: set[str] = set()
_redactor = Redactor()


def redact_secrets(secrets: Iterable[str]) -> None:
    """Mask these values (added to those already registered) in every log line from now on."""
    global _redactor
    _registered.update(secrets)
    _redactor = Redactor(_registered)


def redact(text: str) -> str:
    """``text`` with every registered secret masked (for messages that leave the process)."""
    return _redactor(text)


def _redact_processor(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> Mapping[str, Any]:
    return {key: _redactor.value(value) for key, value in event_dict.items()}


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
            structlog.processors.format_exc_info,
            _redact_processor,
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
    """Pure ASGI middleware: one ``http.request`` line per request, secrets masked."""

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
            # Decoded first: a secret spelled with %-escapes is still the secret.
            query = unquote(bytes(scope.get("query_string", b"")).decode("latin-1"))
            self.log.info(
                "http.request",
                method=scope.get("method"),
                path=redact(mask_path(str(scope.get("path", "")))),
                query=redact(query) if query else None,
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 2),
            )
