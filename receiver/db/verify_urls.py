"""LUD-21 verify URLs by payment hash, for ``receiver.lightning.lnaddress``.

An lnaddress invoice's status is asked at its verify URL, so the URL must outlive a restart
(the ``refund.completed`` check and reuse both ask for it). Kept in the service's database
(table ``lnaddress_verify_urls``, migration 0004): replicas sharing a PostgreSQL database all
know every invoice. ``prune`` drops rows whose invoice expired before a given time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import bindparam, delete, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from receiver.db.engine import Database
from receiver.db.models import VerifyUrlRecord
from receiver.db.sql import dialect_of, upsert
from receiver.db.types import utcnow
from receiver.errors import StorageUnavailable

T = TypeVar("T")

_TABLE: Any = VerifyUrlRecord.__table__
_KEYS = ("payment_hash",)
_COLUMNS = ("payment_hash", "verify_url", "amount_msat", "expires_at")
_GET = select(_TABLE.c.verify_url, _TABLE.c.amount_msat, _TABLE.c.expires_at).where(
    _TABLE.c.payment_hash == bindparam("payment_hash")
)
_PRUNE = delete(_TABLE).where(_TABLE.c.expires_at < bindparam("before"))


@dataclass(frozen=True)
class VerifyUrl:
    """Where to ask whether an invoice is paid, and what it was for."""

    verify_url: str
    amount_msat: int
    expires_at: datetime


class VerifyUrls(Protocol):
    """What lnaddress needs: put, get, prune."""

    async def put(
        self, payment_hash: str, verify_url: str, amount_msat: int, expires_at: datetime
    ) -> None: ...

    async def get(self, payment_hash: str) -> VerifyUrl | None: ...

    async def prune(self, before: datetime | None = None) -> int: ...


class SqlVerifyUrls:
    """``VerifyUrls`` on the service's database (either dialect); a database failure is
    ``StorageUnavailable`` (the backend then only loses that invoice's status)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def _run(self, work: Callable[[Connection], T]) -> T:
        try:
            # A lost row only turns that invoice's status into "unknown": no flush to disk.
            return await self.db.run(work, durable=False)
        except (SQLAlchemyError, OSError) as exc:
            raise StorageUnavailable("the lnaddress verify-URL store failed") from exc

    async def put(
        self, payment_hash: str, verify_url: str, amount_msat: int, expires_at: datetime
    ) -> None:
        """Remember (or replace) the verify URL of ``payment_hash``."""
        row = {
            "payment_hash": payment_hash,
            "verify_url": verify_url,
            "amount_msat": amount_msat,
            "expires_at": expires_at,
        }

        def work(conn: Connection) -> None:
            conn.execute(upsert(dialect_of(conn), _TABLE, _KEYS, _COLUMNS), row)

        await self._run(work)

    async def get(self, payment_hash: str) -> VerifyUrl | None:
        """The verify URL of ``payment_hash``, or None."""
        params = {"payment_hash": payment_hash}
        found = await self._run(lambda conn: conn.execute(_GET, params).first())
        return None if found is None else VerifyUrl(found[0], int(found[1]), found[2])

    async def prune(self, before: datetime | None = None) -> int:
        """Drop the rows whose invoice expired before ``before`` (now); how many went."""
        params = {"before": before or utcnow()}
        result = await self._run(lambda conn: conn.execute(_PRUNE, params))
        return int(result.rowcount or 0)
