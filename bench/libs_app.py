"""The floor: the bare app (``bare_app.py``) after importing the third-party packages that
``kotani-receiver serve`` has loaded at idle, and nothing of the service's own code. What the
service's start costs beyond this line is its own modules and work."""

import importlib

from bare_app import app

PACKAGES = (
    "aiosqlite",
    "coincurve",
    "dotenv",
    "httpx",
    "itsdangerous",
    "limits.aio.storage",
    "limits.aio.strategies",
    "prometheus_client",
    "pydantic",
    "pydantic_settings",
    "sqlalchemy.dialects.sqlite.aiosqlite",
    "sqlalchemy.ext.asyncio",
    "sqlalchemy.orm",
    "structlog",
)
for name in PACKAGES:
    importlib.import_module(name)

__all__ = ["app"]
