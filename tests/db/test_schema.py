"""Alembic's migrations and the models describe the same tables, every table (alembic's own
comparison, on SQLite and PostgreSQL): the migrations are the only DDL."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, Table

import receiver.inbox.models
import receiver.kotani.models_db  # noqa: F401 (their tables join Base.metadata)
from receiver.db import Database
from receiver.db.models import Base

TABLES = set(Base.metadata.tables)


def _table_of(diff: Any) -> str | None:
    """The table a diff entry is about (entries are tuples, or lists of tuples)."""
    entry = diff[0] if isinstance(diff, list) else diff
    for part in entry[1:]:
        name = getattr(part, "name", None) if not isinstance(part, str) else None
        table = getattr(part, "table", None)
        if table is not None and getattr(table, "name", None):
            return str(table.name)
        if name and hasattr(part, "columns"):
            return str(name)
        if isinstance(part, str) and part in TABLES:
            return part
    return None


async def _diffs(db: Database, metadata: MetaData) -> list[Any]:
    async with db.engine.connect() as conn:
        return await conn.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
        )


async def test_migration_matches_the_models(db: Database) -> None:
    assert {"invoices", "webhook_events", "bridge_deposits", "lnaddress_verify_urls"} <= TABLES
    # Every difference counts, including tables only one side has (none is skipped).
    assert [d for d in await _diffs(db, Base.metadata) if _table_of(d) != "alembic_version"] == []


async def test_the_comparison_sees_a_difference(db: Database) -> None:
    """The check above can fail: a column the migration lacks is reported."""
    metadata = MetaData()
    for table in Base.metadata.sorted_tables:
        table.to_metadata(metadata)
    Table("refunds", metadata, Column("surprise", Integer), extend_existing=True)
    diffs = [d for d in await _diffs(db, metadata) if _table_of(d) in TABLES]
    assert any("surprise" in repr(d) for d in diffs)
