"""Migration 0003 creates exactly the tables ``receiver.kotani.models_db`` maps, and drops them.

Run on SQLite and on the tests' real PostgreSQL server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from receiver.db.engine import MIGRATIONS
from receiver.kotani.models_db import BridgeDepositRecord, BridgeEventRecord


def _alembic(connection: Connection, action: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    getattr(command, action)(config, revision)


def _schema(connection: Connection) -> dict[str, Any]:
    inspector = inspect(connection)
    tables = set(inspector.get_table_names())
    out: dict[str, Any] = {"tables": tables}
    for name in ("bridge_deposits", "bridge_deposit_events"):
        if name in tables:
            out[name] = (
                {c["name"]: c["nullable"] for c in inspector.get_columns(name)},
                {ix["name"] for ix in inspector.get_indexes(name)},
            )
    return out


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'm.sqlite3'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


async def test_upgrade_matches_the_models_and_downgrades(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_alembic, "upgrade", "0003")
        async with engine.connect() as conn:
            schema = await conn.run_sync(_schema)
        for model in (BridgeDepositRecord, BridgeEventRecord):
            table = model.__table__
            columns, indexes = schema[table.name]
            assert columns == {c.name: c.nullable for c in table.columns}, table.name
            assert indexes == {ix.name for ix in table.indexes}, table.name
        async with engine.begin() as conn:
            await conn.run_sync(_alembic, "downgrade", "0001")
        async with engine.connect() as conn:
            tables = (await conn.run_sync(_schema))["tables"]
        assert "bridge_deposits" not in tables and "bridge_deposit_events" not in tables
        assert "invoices" in tables
    finally:
        await engine.dispose()
