"""The database handle: units of work, health ping and Alembic upgrades.

Every store writes its transactions once, as a plain function of a SQLAlchemy ``Connection``
(Core statements on the models' tables), and hands it to ``Database.run``. How that function
runs is decided here, once:

- **SQLite**: on one thread that owns the process's one writer connection (pysqlite, sync
  engine): one thread hop per transaction, whatever the number of statements in it. Through
  aiosqlite every statement is a hop, and under load each waits behind the HTTP work on the event
  loop (measured on the mint path: ~3.2 ms for a two-statement lease against ~0.5 ms in one hop).
  Transactions start with ``BEGIN IMMEDIATE`` (the write lock up front: no read-to-write upgrade
  deadlock), waiting for it in short steps: SQLite's own busy handler sleeps 1, 2, 5 ... 100 ms,
  and another process's write is usually over after microseconds.
- **PostgreSQL**: the same function on the asyncpg engine through ``run_sync`` (greenlet): one
  pooled connection per transaction, any number of transactions at once.

SQLite runs in WAL mode with ``synchronous=FULL`` (each commit is fsynced: an acknowledged row
survives a crash of the process *and* of the machine), so several processes can share the file.
``run(work, durable=False)`` skips that commit's flush (a mint lease is worthless after a power
loss): ``synchronous=OFF`` on SQLite, ``synchronous_commit=off`` on PostgreSQL.

``orm(work)`` is the same unit with an ORM ``Session`` on its connection (the refund record,
the bridge deposits, the internal API's views). The async engine (``engine``, ``session()``)
serves only migrations, the health ping and tests that inspect rows.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from receiver.db.thread import SqliteThread
from receiver.files import private_file

T = TypeVar("T")

MIGRATIONS = Path(__file__).with_name("migrations")
HEADS = frozenset({"0002", "0003", "0004"})
"""The migrations' head revisions (``tests/db/test_heads.py`` holds it to Alembic's own): a
database whose ``alembic_version`` holds exactly these is migrated without loading Alembic."""
# Replicas starting together must not run migrations concurrently (PostgreSQL advisory lock key).
_MIGRATION_LOCK = 0x6B6F74616E69
BUSY_TIMEOUT = 15.0
"""Seconds a SQLite transaction waits for the write lock (another process holds it)."""
BUSY_STEP = 0.0005
WAL_AUTOCHECKPOINT = 1000
"""SQLite's default: checkpoint once the WAL holds this many pages (durable transactions only)."""


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
                # Invoices and webhook bodies: 0600 in a 0700 directory (SQLite creates the
                # -wal and -shm files with the database file's mode).
                private_file(Path(database))
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
        self._writer: _Writer | None = None
        self._thread: SqliteThread | None = None
        if self.is_sqlite:
            # The one writer connection, used only from its thread (StaticPool: one connection).
            writer = create_engine(
                self.url.set(drivername="sqlite"),
                poolclass=StaticPool,
                connect_args={"check_same_thread": False, "isolation_level": None},
            )
            event.listen(writer, "connect", _sqlite_pragmas)
            event.listen(writer, "connect", _no_busy_handler)
            event.listen(writer, "begin", _begin_immediate)
            self._writer = _Writer(writer)
            self._thread = SqliteThread("sqlite-writer")

    async def run(self, work: Callable[[Connection], T], *, durable: bool = True) -> T:
        """``work(connection)`` in one transaction, committed when it returns (rolled back if it
        raises); its result here. ``durable=False``: this commit is not flushed to disk."""
        if self._thread is not None:
            writer = self._writer
            assert writer is not None
            return await self._thread.run(lambda: writer.run(work, durable))
        async with self.engine.begin() as conn:
            if not durable:
                await conn.execute(text("SET LOCAL synchronous_commit = off"))
            return await conn.run_sync(work)

    def session(self) -> AsyncSession:
        """A new session (use as ``async with db.session() as s``)."""
        return self.sessions()

    async def orm(self, work: Callable[[Session], T], *, durable: bool = True) -> T:
        """``run`` with an ORM ``Session`` on the unit's connection, flushed before the commit;
        the objects it returns stay loaded (detached)."""

        def unit(conn: Connection) -> T:
            with Session(bind=conn, expire_on_commit=False) as session:
                result = work(session)
                session.commit()  # a flush: the session joined the unit's transaction
                return result

        return await self.run(unit, durable=durable)

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
        A database already at ``HEADS`` (every start but the first) is told by one query.
        """
        async with self.engine.connect() as conn:
            if await conn.run_sync(applied_revisions) == HEADS:
                return False
        async with self.engine.begin() as conn:
            if not self.is_sqlite:
                await conn.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})"))
            return await conn.run_sync(_upgrade)

    async def dispose(self) -> None:
        if self._thread is not None and self._writer is not None:
            self._thread.close(self._writer.close)  # the connection belongs to its thread
            self._thread = None
        await self.engine.dispose()


def applied_revisions(connection: Connection) -> frozenset[str]:
    """The revisions in the database's ``alembic_version`` (none before the first migration)."""
    if not inspect(connection).has_table("alembic_version"):
        return frozenset()
    return frozenset(connection.scalars(text("SELECT version_num FROM alembic_version")))


def _upgrade(connection: Connection) -> bool:
    # Here, when a migration is due: Alembic and Mako are ~95 modules, 6 MB and ~0.3 s a start.
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

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


def _no_busy_handler(dbapi_connection: Any, _record: Any) -> None:
    # _begin_immediate waits for the lock itself, in short steps.
    dbapi_connection.execute("PRAGMA busy_timeout=0")


def _begin_immediate(conn: Connection) -> None:
    raw: Any = conn.connection.dbapi_connection
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            raw.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorcode", sqlite3.SQLITE_BUSY) & 0xFF
            if busy != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                # As SQLAlchemy raises every other driver error: callers catch SQLAlchemyError.
                raise OperationalError("BEGIN IMMEDIATE", None, exc) from exc
            time.sleep(BUSY_STEP)


class _Writer:
    """The SQLite writer connection, opened on (and used only from) its thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.conn: Connection | None = None
        self.durable = True

    def run(self, work: Callable[[Connection], T], durable: bool) -> T:
        if self.conn is None:
            self.conn = self.engine.connect()
        conn = self.conn
        if durable != self.durable:
            raw: Any = conn.connection.dbapi_connection
            if durable:
                raw.execute("PRAGMA synchronous=FULL")
                raw.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
            else:
                # No checkpoint either: one run with syncs off would leave checkpointed pages
                # unsynced in the database file while the WAL that held them is reused, putting
                # the durable transactions before it at risk on a power loss.
                raw.execute("PRAGMA wal_autocheckpoint=0")
                raw.execute("PRAGMA synchronous=OFF")
            self.durable = durable
        try:
            with conn.begin():
                return work(conn)
        except BaseException:
            if conn.invalidated or conn.closed:
                self.close()
            raise

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self.engine.dispose()
