"""``GET /healthz`` (the process answers) and ``GET /readyz`` (database and a backend answer)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse

from receiver.errors import BackendError
from receiver.lightning.base import LightningBackend
from receiver.services import Services

PROBE_TIMEOUT = 3.0


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


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


async def readyz(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    database_ok, *probes = await asyncio.gather(
        services.db.ping(), *(_probe(b) for b in services.chain.backends)
    )
    ready = bool(database_ok) and any(p["ok"] for p in probes if isinstance(p, dict))
    body = {
        "status": "ready" if ready else "unavailable",
        "database": {"ok": bool(database_ok)},
        "backends": probes,
    }
    return JSONResponse(body, status_code=200 if ready else 503)
