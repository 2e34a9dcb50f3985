"""``Database.upgrade`` runs Alembic only when the database is not at ``HEADS``, on SQLite and
PostgreSQL: a fresh database is migrated, one at head is told by a query, one a revision behind
is migrated again."""

from __future__ import annotations

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from receiver.db import Database
from receiver.db import engine as engine_module
from receiver.db.engine import HEADS, MIGRATIONS


def test_heads_are_the_migrations_heads() -> None:
    """Add a migration, and this names the new head to put in ``HEADS``."""
    assert set(ScriptDirectory(str(MIGRATIONS)).get_heads()) == HEADS


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))


async def test_fresh_migrated_at_head_skipped_behind_migrated(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(db_url)
    try:
        assert await db.upgrade() is True
        assert "lnaddress_verify_urls" in await _tables(db)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(engine_module.applied_revisions) == HEADS

        def no_alembic(_connection: object) -> bool:
            raise AssertionError("Alembic ran on a database at head")

        with monkeypatch.context() as patch:
            patch.setattr(engine_module, "_upgrade", no_alembic)
            assert await db.upgrade() is False

        # One branch a revision behind (its table gone, its row too): Alembic runs again.
        async with db.engine.begin() as conn:
            await conn.execute(text("DROP TABLE lnaddress_verify_urls"))
            await conn.execute(text("DELETE FROM alembic_version WHERE version_num = '0004'"))
        assert await db.upgrade() is True
        assert "lnaddress_verify_urls" in await _tables(db)
    finally:
        await db.dispose()
