"""The wire tests run twice: on asyncio's own event loop and on uvloop, the one ``serve`` runs.

Transports differ between the two (uvloop's are not ``asyncio.Transport`` subclasses, they
report a closed peer in their own order), so what passes on one proves nothing for the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest
import uvloop


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
