"""Deprecated alias: ``SqliteThread`` moved to ``receiver.db.thread``.

Kept importable only for ``receiver.lightning.lnaddress`` until it uses ``receiver.db.verify_urls``
(then this module goes).
"""

from receiver.db.thread import SqliteThread

__all__ = ["SqliteThread"]
