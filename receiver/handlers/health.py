"""``GET /healthz`` (the process answers, no I/O) and ``GET /readyz`` (database and a backend).

``/readyz`` is unauthenticated and load balancers call it often, so it never reaches the nodes
per request: one probe of the database and every backend runs at a time (single-flight: callers
arriving meanwhile wait for it), and its verdict is reused for ``READY_TTL`` seconds. However
many probes arrive, each backend is asked at most once per ``READY_TTL``; without this, 600
concurrent probes against a slow node pushed mint latency to 7.7-14 s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import JSONResponse

from receiver.errors import BackendError
from receiver.handlers import schemas
from receiver.lightning.base import LightningBackend
from receiver.services import Services

PROBE_TIMEOUT = 3.0
READY_TTL = 5.0
"""Seconds a readiness verdict is reused."""


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse(schemas.Health(status="ok").answer())


async def _probe(backend: LightningBackend) -> dict[str, object]:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            info = await backend.info()
    except TimeoutError:
        return {"name": backend.name, "ok": False, "error": "backend.timeout"}
    except BackendError as exc:
        return {"name": backend.name, "ok": False, "error": exc.error_code}
    except Exception as exc:  # a probe must report, never crash the endpoint
        return {
            "name": backend.name,
            "ok": False,
            "error": f"backend.internal.{type(exc).__name__}",
        }
    return {
        "name": backend.name,
        "ok": True,
        "node_id": info.node_id,
        "network": info.network.value if info.network else None,
    }


async def _check(services: Services) -> dict[str, object]:
    database_ok, *probes = await asyncio.gather(
        services.db.ping(), *(_probe(b) for b in services.chain.backends)
    )
    ready = bool(database_ok) and any(p["ok"] for p in probes if isinstance(p, dict))
    return {
        "status": "ready" if ready else "unavailable",
        "database": {"ok": bool(database_ok)},
        "backends": probes,
    }


@dataclass
class Readiness:
    """The last readiness verdict, and the one probe in flight (if any)."""

    ttl: float = READY_TTL
    clock: Callable[[], float] = time.monotonic
    _body: dict[str, object] | None = None
    _at: float = 0.0
    _running: asyncio.Task[dict[str, object]] | None = field(default=None, repr=False)

    async def verdict(self, services: Services) -> dict[str, object]:
        if self._body is not None and self.clock() - self._at < self.ttl:
            return self._body
        if self._running is None:
            self._running = asyncio.create_task(_check(services))
            self._running.add_done_callback(self._finished)
        # shield: a caller that disconnects must not cancel the probe the others wait for.
        return await asyncio.shield(self._running)

    def _finished(self, task: asyncio.Task[dict[str, object]]) -> None:
        self._running = None
        if not task.cancelled() and task.exception() is None:
            self._body, self._at = task.result(), self.clock()


async def readyz(request: Request) -> JSONResponse:
    state = request.app.state
    readiness: Readiness | None = getattr(state, "readiness", None)
    if readiness is None:
        readiness = state.readiness = Readiness()
    body = schemas.Readiness.model_validate(await readiness.verdict(state.services))
    return JSONResponse(body.answer(), status_code=200 if body.status == "ready" else 503)
