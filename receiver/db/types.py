"""Column types shared by every table."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

MAX_ID = 2**63 - 1
"""The largest id a BIGINT holds: a larger one names no row (asking the driver overflows)."""


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite keeps no zone: store naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


_SQLITE = sqlite.dialect()


def _identity(value: Any) -> Any:
    return value


def sqlite_bind(column: Any) -> Callable[[Any], Any]:
    """What SQLAlchemy does to a value of ``column`` before SQLite stores it.

    For the paths that write through the stdlib ``sqlite3`` module (one thread hop per
    transaction): they store exactly what the ORM would, so the ORM reads it back unchanged.
    """
    return column.type.dialect_impl(_SQLITE).bind_processor(_SQLITE) or _identity


def sqlite_result(column: Any) -> Callable[[Any], Any]:
    """What SQLAlchemy does to a raw SQLite value of ``column`` when it reads it."""
    return column.type.dialect_impl(_SQLITE).result_processor(_SQLITE, None) or _identity
