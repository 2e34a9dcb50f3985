"""A one-line stderr spinner for waits longer than a second (no dependency, no thread)."""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

FRAMES = "|/-\\"
DELAY = 1.0
"""Nothing is drawn for waits shorter than this."""


class Progress:
    """What the spinner shows; ``step`` changes the text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.started = time.monotonic()

    def step(self, text: str) -> None:
        self.text = text


@asynccontextmanager
async def spinner(text: str) -> AsyncIterator[Progress]:
    """Draw ``text`` with a spinner and the elapsed time on stderr (a TTY only) until done."""
    progress = Progress(text)
    drawn = False

    async def draw() -> None:
        nonlocal drawn
        await asyncio.sleep(DELAY)
        for frame in itertools.cycle(FRAMES):
            elapsed = time.monotonic() - progress.started
            sys.stderr.write(f"\r{frame} {progress.text} ({elapsed:.1f} s)\033[K")
            sys.stderr.flush()
            drawn = True
            await asyncio.sleep(0.1)

    task = asyncio.create_task(draw()) if sys.stderr.isatty() else None
    try:
        yield progress
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if drawn:
                sys.stderr.write("\r\033[K")
                sys.stderr.flush()
