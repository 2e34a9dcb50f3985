"""The data directory is created 0700 and secret files 0600, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from receiver.files import private_dir, private_file
from receiver.settings import Settings
from receiver.tokens import resolve_tokens


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_created_dir_and_file_are_private(tmp_path: Path, open_umask: None) -> None:
    secret = private_file(tmp_path / "var" / "nested" / "key")
    assert mode(tmp_path / "var" / "nested") == 0o700
    assert mode(secret) == 0o600


def test_an_existing_shared_dir_is_left_alone(tmp_path: Path, open_umask: None) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    private_dir(shared)
    assert mode(shared) == 0o755


def test_generated_token_file_and_dir(make_settings: object, open_umask: None) -> None:
    settings: Settings = make_settings(invoice_tokens=[])  # type: ignore[operator]
    _, created = resolve_tokens(settings, create=True)
    assert created is not None
    assert mode(settings.data_dir) == 0o700
    assert mode(settings.data_dir / "invoice-token") == 0o600


async def test_database_and_fake_node_files_are_private(tmp_path: Path, open_umask: None) -> None:
    from receiver.amounts import Msat
    from receiver.db import Database
    from receiver.lightning.base import BackendContext, Network
    from receiver.lightning.fake import FakeBackend, FakeConfig

    data = tmp_path / "var"
    db = Database(f"sqlite+aiosqlite:///{data / 'receiver.sqlite3'}")
    try:
        await db.upgrade()
    finally:
        await db.dispose()
    assert mode(data) == 0o700
    assert mode(data / "receiver.sqlite3") == 0o600
    fake = FakeBackend(FakeConfig(), BackendContext(network=Network.REGTEST, data_dir=data))
    try:
        await fake.create_invoice(Msat(1000), "m", 3600)
    finally:
        await fake.aclose()
    stores = [p for p in data.iterdir() if p.name.startswith("fake-node")]
    assert stores and all(mode(p) == 0o600 for p in stores), [p.name for p in stores]
