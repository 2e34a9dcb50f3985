"""Logging: structlog lines with stable event names, and the redaction that keeps secrets out.

Two guards, both applied to every line:
- the secret segment of a token-bearing path (``/invoices/<t>``, ``/webhooks/kotani/<t>``, in
  any letter case and with any run of slashes) is written ``***``, so a wrong or unknown token
  is not logged either;
- every configured secret (invoice tokens, webhook secrets, API keys, ...; registered with
  ``redact_secrets`` when the service starts) is replaced by ``***`` wherever it appears in any
  string of any line: a path, a query string, an error message.
uvicorn's own access log is off; ``receiver.observe.Observe`` writes one line per request and
sets ``REQUEST_ID``, which every line logged meanwhile carries.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from contextvars import ContextVar
from typing import Any, TextIO

import structlog

_SECRET_PATH = re.compile(r"^(/+(?:invoices|webhooks/+kotani)/+)[^/?]+", re.IGNORECASE)
_MIN_SECRET = 6
"""Shorter values are not treated as secrets to mask (they would mask ordinary words)."""

MASK = "***"
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
"""The id of the request being served (set by ``receiver.observe.Observe``)."""


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


def _add_request_id(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    request_id = REQUEST_ID.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    return event_dict


def _redact_processor(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> Mapping[str, Any]:
    return {key: _redactor.value(value) for key, value in event_dict.items()}


def configure(level: str = "info", fmt: str = "console", stream: TextIO | None = None) -> None:
    """One log stream for the whole process: the service's structlog lines and every stdlib
    logger (uvicorn's, Alembic's, SQLAlchemy's) rendered alike, console-readable or JSON
    (``LOG_FORMAT=json``), each line with the request id bound while a request runs."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        _add_request_id,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, _foreign_component],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact_processor,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in _FOREIGN_LOGGERS:  # their own handlers would print a second format
        foreign = logging.getLogger(name)
        foreign.handlers.clear()
        foreign.propagate = True
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )


_FOREIGN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "alembic", "sqlalchemy")


def _foreign_component(
    logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> Mapping[str, Any]:
    """Lines from stdlib loggers say where they came from, as the service's own do."""
    record = event_dict.get("_record")
    if record is not None and "component" not in event_dict:
        event_dict["component"] = record.name
    return event_dict


def get_logger(name: str) -> Any:
    """A structlog logger bound to a component name."""
    return structlog.get_logger(component=name)
