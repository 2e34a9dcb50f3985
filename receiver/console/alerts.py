"""Alerts through Apprise (``RECEIVER_ALERT_URLS``): one message per incident, one on resolve.

    alerter = Alerter(urls)             # start() / stop() around the service's life
    alerter.raise_incident(key, text)   # sent once, however often it is called while open
    alerter.resolve_incident(key, text) # sent once, only for an open incident

Neither call blocks or awaits: they put a message on a bounded queue that one background task
sends, each message retried with ``receiver.retry.RetryPolicy`` (full jitter) until Apprise
reports it delivered or the attempts run out. A full queue drops the message with a log line
rather than hold up the caller (the worker, the breaker).

``Checker`` turns ``ConsoleData.incidents()`` into raise/resolve calls every ``interval``
seconds, only on the replica that leads ``"alerts"`` (``receiver.db.leader``: an advisory lock on
PostgreSQL, the one process on SQLite), so a fleet sends each alert once; when the leader dies,
another replica takes over. Incidents it did not raise (say, the breaker's own) it leaves alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from receiver.console.data import ConsoleData, StoreData
from receiver.db.leader import leadership
from receiver.logs import get_logger
from receiver.retry import RetryPolicy

log = get_logger("alerts")

SEND_POLICY = RetryPolicy(max_attempts=6, base=1.0, cap=60.0)
QUEUE_SIZE = 1000
TITLE = "kotani-receiver"


@dataclass(frozen=True)
class Notice:
    key: str
    resolved: bool
    text: str

    @property
    def body(self) -> str:
        return f"{'RESOLVED' if self.resolved else 'ALERT'}: {self.text}"


Send = Callable[[Notice], Awaitable[bool]]


def apprise_sender(urls: Sequence[str]) -> Send:
    """Sends through Apprise to every URL; True when all of them took it."""
    import apprise  # only with RECEIVER_ALERT_URLS set: its ~60 modules cost every other start

    notifier = apprise.Apprise()
    for url in urls:
        if not notifier.add(url):
            raise ValueError("RECEIVER_ALERT_URLS: an entry is not an Apprise URL")

    async def send(notice: Notice) -> bool:
        kind = apprise.NotifyType.SUCCESS if notice.resolved else apprise.NotifyType.FAILURE
        return bool(await notifier.async_notify(body=notice.body, title=TITLE, notify_type=kind))

    return send


class Alerter:
    """Open incidents of this process and the task that tells the world about them."""

    def __init__(self, send: Send, *, policy: RetryPolicy = SEND_POLICY) -> None:
        self._send = send
        self.policy = policy
        self.open: dict[str, str] = {}
        self._queue: asyncio.Queue[Notice] = asyncio.Queue(QUEUE_SIZE)
        self._task: asyncio.Task[None] | None = None

    def raise_incident(self, key: str, text: str) -> bool:
        """Open ``key`` and queue its alert; False (nothing sent) if it is already open."""
        if key in self.open:
            return False
        self.open[key] = text
        self._put(Notice(key, False, text))
        return True

    def resolve_incident(self, key: str, text: str) -> bool:
        """Close ``key`` and queue the resolve message; False if it was not open."""
        if self.open.pop(key, None) is None:
            return False
        self._put(Notice(key, True, text))
        return True

    def _put(self, notice: Notice) -> None:
        try:
            self._queue.put_nowait(notice)
        except asyncio.QueueFull:
            log.warning("alerts.dropped", key=notice.key, resolved=notice.resolved)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="alerts")

    async def stop(self, grace: float = 5.0) -> None:
        """Send what is queued (``grace`` seconds at most), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            notice = await self._queue.get()
            try:
                await self._deliver(notice)
            finally:
                self._queue.task_done()

    async def _deliver(self, notice: Notice) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                sent = await self._send(notice)
            except Exception as exc:  # a notifier must never take the task down
                log.warning("alerts.send_error", key=notice.key, error=type(exc).__name__)
                sent = False
            if sent:
                log.info("alerts.sent", key=notice.key, resolved=notice.resolved)
                return
            delay = self.policy.next_delay(attempt)
            if delay is None:
                log.error("alerts.gave_up", key=notice.key, attempts=attempt)
                return
            await asyncio.sleep(delay)


class Checker:
    """Raises and resolves the incidents ``ConsoleData.incidents`` reports, periodically."""

    def __init__(
        self,
        data: ConsoleData,
        alerter: Alerter,
        *,
        unsubmitted_after: timedelta,
        interval: float = 30.0,
    ) -> None:
        self.data = data
        self.alerter = alerter
        self.unsubmitted_after = unsubmitted_after
        self.interval = interval
        self._mine: set[str] = set()

    async def check_once(self) -> None:
        now = await self.data.incidents(self.unsubmitted_after)
        for key, text in now.items():
            if self.alerter.raise_incident(key, text):
                self._mine.add(key)
        for key in sorted(self._mine - now.keys()):
            self._mine.discard(key)
            text = self.alerter.open.get(key, key)
            self.alerter.resolve_incident(key, f"{text}: no longer the case")

    async def run(self, stop: asyncio.Event) -> None:
        """Check every ``interval`` seconds until ``stop`` is set (a ``leadership`` job)."""
        while not stop.is_set():
            try:
                await self.check_once()
            except Exception as exc:  # the database away for a moment: try again next round
                log.warning("alerts.check_failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)


@asynccontextmanager
async def open_alerts(state: Any) -> AsyncIterator[Alerter | None]:
    """The alerter and checker of a running app (``state``: its ``app.state``), or None when
    ``RECEIVER_ALERT_URLS`` is empty. Entered by the app's lifespan after the webhooks."""
    settings = state.services.settings
    if not settings.alert_urls:
        yield None
        return
    alerter = Alerter(apprise_sender([u.get_secret_value() for u in settings.alert_urls]))
    checker = Checker(
        StoreData.of_app(state),
        alerter,
        unsubmitted_after=timedelta(minutes=settings.alert_after),
        interval=settings.alert_interval,
    )
    lead = leadership(state.services.db.url, "alerts", checker.run)
    alerter.start()
    lead.start()  # returns at once: leading is decided in the background
    log.info("alerts.started", urls=len(settings.alert_urls))
    try:
        yield alerter
    finally:
        await lead.aclose()
        await alerter.stop()
