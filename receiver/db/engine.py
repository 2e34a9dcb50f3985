"""The database handle: async engine, sessions, health ping and Alembic upgrades.

SQLite runs in WAL mode with ``synchronous=FULL`` (each commit is fsynced: an acknowledged row
survives a crash of the process *and* of the machine) and a busy timeout, so several processes
can share the file. PostgreSQL is reached through asyncpg.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS = Path(__file__).with_name("migrations")
# Replicas starting together must not run migrations concurrently (PostgreSQL advisory lock key).
_MIGRATION_LOCK = 0x6B6F74616E69


class Database:
    """One engine and session factory for the process."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 5,
        max_overflow: int = 10,
        pool_timeout: float = 30.0,
    ) -> None:
        """``pool_*``: the PostgreSQL connection pool per process (SQLite always has one)."""
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        options: dict[str, Any] = {"pool_pre_ping": not self.is_sqlite}
        if self.is_sqlite:
            database = self.url.database or ""
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            options["connect_args"] = {"timeout": 15}
            # One connection per process: SQLite has one writer anyway, and queueing on the
            # async pool is fair and immediate where SQLite's busy handler sleeps in steps of
            # up to 100 ms. Other processes still share the file through WAL and busy_timeout.
            options["pool_size"] = 1
            options["max_overflow"] = 0
            options["pool_timeout"] = 30
        else:
            options.update(
                pool_size=pool_size, max_overflow=max_overflow, pool_timeout=pool_timeout
            )
        self.engine: AsyncEngine = create_async_engine(self.url, **options)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    def session(self) -> AsyncSession:
        """A new session (use as ``async with db.session() as s``)."""
        return self.sessions()

    async def ping(self) -> bool:
        """True when a trivial query succeeds."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def upgrade(self) -> bool:
        """Apply every Alembic migration not yet applied (all branches: ``heads``).

        Replicas may call it at once: on PostgreSQL the first takes a transaction-scoped
        advisory lock and migrates in that transaction (DDL is transactional), the others wait
        for the lock and then find nothing to do. True when this call applied a migration.
        """
        async with self.engine.begin() as conn:
            if not self.is_sqlite:
                await conn.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})"))
            return await conn.run_sync(_upgrade)

    async def dispose(self) -> None:
        await self.engine.dispose()


def _upgrade(connection: Connection) -> bool:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    before = MigrationContext.configure(connection).get_current_heads()
    command.upgrade(config, "heads")
    return MigrationContext.configure(connection).get_current_heads() != before


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
