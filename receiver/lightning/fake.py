"""The fake backend: a development node that signs real bolt11 invoices.

It holds a secp256k1 node key (derived from ``RECEIVER_FAKE_SEED``, or generated once and kept in
``<data_dir>/fake-node.key`` with mode 0600), signs every invoice with it, and keeps each
invoice's preimage in its own SQLite file (``<data_dir>/fake-node.sqlite3``), so that the separate
``kotani-receiver fake pay BOLT11`` process can mark an invoice paid. Nothing it produces is
accepted by a real node's wallet, but every invoice decodes and verifies like one.

It is what the quick start and the tests use; it is product code, not a mock.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import ClassVar

import coincurve
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from receiver import bolt11_reader
from receiver.amounts import Msat
from receiver.errors import BackendRejected
from receiver.files import private_dir, private_file
from receiver.lightning.base import (
    BackendConfig,
    BackendContext,
    Capabilities,
    InvoiceState,
    InvoiceStatus,
    MintedInvoice,
    NodeInfo,
)

MIN_FINAL_CLTV_EXPIRY = 18

_SCHEMA = """
CREATE TABLE IF NOT EXISTS fake_invoices (
    payment_hash TEXT PRIMARY KEY,
    preimage TEXT NOT NULL,
    bolt11 TEXT NOT NULL,
    amount_msat INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    paid_at INTEGER,
    paid_msat INTEGER
)
"""


class FakeConfig(BackendConfig):
    """``RECEIVER_FAKE_*``: the fake node's settings."""

    model_config = SettingsConfigDict(env_prefix="RECEIVER_FAKE_", env_file=".env", extra="ignore")

    seed: SecretStr | None = None
    """Derive the node key from this seed (same seed, same node id) instead of a key file."""


def _key_from_hex(text: str) -> coincurve.PrivateKey:
    key: coincurve.PrivateKey = coincurve.PrivateKey.from_hex(text.strip())
    return key


def _load_or_create_key(path: Path) -> coincurve.PrivateKey:
    try:
        return _key_from_hex(path.read_text())
    except FileNotFoundError:
        pass
    private_dir(path.parent)
    key = coincurve.PrivateKey(secrets.token_bytes(32))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return _key_from_hex(path.read_text())
    with os.fdopen(fd, "w") as handle:
        handle.write(key.secret.hex())
    return key


class FakeBackend:
    """A signing fake node (msat precision, description hashes, any expiry)."""

    Config: ClassVar[type[BackendConfig]] = FakeConfig
    capabilities = Capabilities(msat_precision=True, description_hash=True, max_expiry=None)

    def __init__(self, config: BackendConfig, context: BackendContext) -> None:
        assert isinstance(config, FakeConfig)
        self.name = "fake"
        self._network = context.network
        if config.seed is not None:
            seed = config.seed.get_secret_value().encode()
            self._key = coincurve.PrivateKey(
                hashlib.sha256(b"kotani-receiver/fake/" + seed).digest()
            )
        else:
            self._key = _load_or_create_key(context.data_dir / "fake-node.key")
        self.node_id = self._key.public_key.format(compressed=True).hex()
        self._store_path = context.data_dir / "fake-node.sqlite3"
        # The store is touched only from worker threads, one at a time: one thread hop per
        # invoice (signing with it), and the event loop never waits on SQLite.
        self._db: sqlite3.Connection | None = None
        self._db_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FakeBackend(node_id={self.node_id!r}, network={self._network.value!r})"

    def _store(self) -> sqlite3.Connection:
        if self._db is None:
            private_file(self._store_path)  # preimages: 0600 (SQLite gives -wal/-shm the same)
            db = sqlite3.connect(self._store_path, timeout=5.0, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # a development node: durable enough
            db.execute(_SCHEMA)
            db.commit()
            self._db = db
        return self._db

    def _sign(
        self, amount_msat: Msat, memo: str, expiry: int, description_hash: bytes | None
    ) -> tuple[str, str]:
        preimage = secrets.token_bytes(32)
        digest = hashlib.sha256(preimage).digest()
        payment_hash = digest.hex()
        now = int(time.time())
        try:
            encoded = bolt11_reader.write(
                self._key,
                currency=self._network.bolt11_currency,
                amount_msat=amount_msat,
                timestamp=now,
                payment_hash=digest,
                payment_secret=secrets.token_bytes(32),
                description=None if description_hash is not None else memo,
                description_hash=description_hash,
                expiry=expiry,
                min_final_cltv_expiry=MIN_FINAL_CLTV_EXPIRY,
            )
        except ValueError as exc:  # a memo over 639 bytes
            raise BackendRejected(str(exc), backend=self.name) from None
        with self._db_lock:
            db = self._store()
            db.execute(
                "INSERT INTO fake_invoices"
                " (payment_hash, preimage, bolt11, amount_msat, expires_at) VALUES (?, ?, ?, ?, ?)",
                (payment_hash, preimage.hex(), encoded, int(amount_msat), now + expiry),
            )
            db.commit()
        return encoded, payment_hash

    async def create_invoice(
        self,
        amount_msat: Msat,
        memo: str,
        expiry: int,
        description_hash: bytes | None = None,
    ) -> MintedInvoice:
        if amount_msat <= 0:
            raise BackendRejected("amount must be positive", backend=self.name)
        encoded, payment_hash = await asyncio.to_thread(
            self._sign, amount_msat, memo, expiry, description_hash
        )
        return MintedInvoice(bolt11=encoded, payment_hash=payment_hash, node_id=self.node_id)

    def _lookup(self, payment_hash: str) -> tuple[str, int | None, int] | None:
        with self._db_lock:
            row = (
                self._store()
                .execute(
                    "SELECT preimage, paid_msat, expires_at FROM fake_invoices"
                    " WHERE payment_hash = ?",
                    (payment_hash.lower(),),
                )
                .fetchone()
            )
        return None if row is None else (str(row[0]), row[1], int(row[2]))

    async def invoice_status(self, payment_hash: str) -> InvoiceStatus:
        row = await asyncio.to_thread(self._lookup, payment_hash)
        if row is None:
            return InvoiceStatus(InvoiceState.UNKNOWN)
        _, paid_msat, expires_at = row
        if paid_msat is not None:
            return InvoiceStatus(InvoiceState.PAID, paid_msat=Msat(int(paid_msat)))
        if time.time() >= expires_at:
            return InvoiceStatus(InvoiceState.EXPIRED)
        return InvoiceStatus(InvoiceState.PENDING)

    def _mark_paid(self, payment_hash: str, amount_msat: Msat) -> str:
        with self._db_lock:
            db = self._store()
            row = db.execute(
                "SELECT preimage, paid_msat, expires_at FROM fake_invoices WHERE payment_hash = ?",
                (payment_hash.lower(),),
            ).fetchone()
            if row is None:
                raise BackendRejected("this fake node did not mint that invoice", backend=self.name)
            preimage, paid_msat, expires_at = row
            if paid_msat is not None:
                raise BackendRejected("invoice already paid", backend=self.name)
            if time.time() >= expires_at:
                raise BackendRejected("invoice expired", backend=self.name)
            db.execute(
                "UPDATE fake_invoices SET paid_at = ?, paid_msat = ? WHERE payment_hash = ?",
                (int(time.time()), int(amount_msat), payment_hash.lower()),
            )
            db.commit()
        return str(preimage)

    async def pay(self, payment_hash: str, amount_msat: Msat) -> str:
        """Mark an invoice paid (what ``kotani-receiver fake pay`` does); returns the preimage."""
        return await asyncio.to_thread(self._mark_paid, payment_hash, amount_msat)

    async def info(self) -> NodeInfo:
        return NodeInfo(node_id=self.node_id, network=self._network, alias="kotani-receiver-fake")

    async def aclose(self) -> None:
        with self._db_lock:
            if self._db is not None:
                self._db.close()
                self._db = None
