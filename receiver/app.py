"""The ASGI application: routes, error rendering, middleware and lifespan.

``create_app(settings)`` is the only place where the pieces meet. Every error a request can
meet is rendered as ``{"error": {"code", "message"}}``: ``ReceiverError`` with its own status,
Starlette's 404/405 as themselves, and anything unexpected as a 503 with code
``internal.unexpected`` (logged, never a 500: Kotani treats any answer but a valid invoice as a
reason to fall back, and a 503 tells operators and load balancers the right thing).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from receiver.console import console_routes
from receiver.console.alerts import open_alerts
from receiver.errors import ReceiverError
from receiver.handlers.health import healthz, readyz
from receiver.handlers.invoice_url import create_invoice
from receiver.handlers.kotani_webhook import routes as webhook_routes
from receiver.handlers.metrics import metrics
from receiver.handlers.openapi import routes as openapi_routes
from receiver.inbox.stats import snapshot
from receiver.kotani.refund_config import handle_refund_configs
from receiver.kotani.wiring import open_kotani
from receiver.lightning.base import LightningBackend
from receiver.logs import configure, get_logger, mask_path, redact_secrets
from receiver.observe import Observe
from receiver.proxies import TrustedProxies
from receiver.ratelimit import RateLimit
from receiver.runtime import open_webhooks
from receiver.services import open_services
from receiver.settings import Settings, load_settings

log = get_logger("app")


def error_body(code: str, message: str) -> dict[str, object]:
    return {"error": {"code": code, "message": message}}


async def _receiver_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ReceiverError)
    error: dict[str, object] = {"code": exc.error_code, "message": exc.message}
    attempts = getattr(exc, "attempts", ())
    if attempts:
        error["attempts"] = [{"backend": a.backend, "code": a.code} for a in attempts]
    body = {"error": error}
    if exc.status >= 500:
        log.warning(
            "http.unavailable",
            code=exc.error_code,
            path=mask_path(request.url.path),
            error=exc.message,
        )
    status = 503 if exc.status >= 500 else exc.status
    return JSONResponse(body, status_code=status, headers=exc.headers())


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http.error")
    return JSONResponse(
        error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
    )


class ErrorShield:
    """Pure ASGI: an exception nothing else handled becomes a logged 503, never a 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except ClientDisconnect:
            # The client went away mid-request: nothing to answer, nothing went wrong here.
            # INFO without a traceback, so disconnecting clients cannot flood the error log.
            log.info("http.client_disconnected", path=mask_path(str(scope.get("path", ""))))
        except Exception as exc:
            log.error(
                "http.unexpected_error",
                path=mask_path(str(scope.get("path", ""))),
                error=type(exc).__name__,
                exc_info=exc,
            )
            if not started:
                response = JSONResponse(
                    error_body("internal.unexpected", "unexpected error; try again"),
                    status_code=503,
                    headers={"Retry-After": "5"},
                )
                await response(scope, receive, send)


def create_app(
    settings: Settings,
    *,
    backends: Sequence[LightningBackend] | None = None,
    migrate: bool = True,
) -> Starlette:
    """The service for ``settings``; ``backends`` replaces the configured ones (tests);
    ``migrate=False`` when the caller has applied the migrations already (``serve``)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_services(settings, backends=backends, migrate=migrate) as services:
            redact_secrets([*settings.secret_values(), *services.tokens.plain()])
            app.state.services = services
            app.state.metrics_snapshot = lambda: snapshot(services.db)
            app.state.kotani = await open_kotani(services)
            # Webhook inbox, worker and forwarder; closed before the database (LIFO).
            # One Kotani client for the process: the Kotani area's, shared with the webhooks.
            pipeline = open_webhooks(services, kotani=app.state.kotani.client)
            app.state.webhooks = await services.stack.enter_async_context(pipeline)
            app.state.alerts = await services.stack.enter_async_context(open_alerts(app.state))
            log.info(
                "app.started",
                backends=[b.name for b in services.chain.backends],
                network=settings.network.value,
                tokens=len(services.tokens),
            )
            yield
        log.info("app.stopped")

    routes = [
        Route("/invoices/{token}", create_invoice, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/refund-configs", handle_refund_configs, methods=["POST"]),
        *webhook_routes(),
        *openapi_routes(settings),
        *console_routes(settings),
    ]

    def valid_token(token: str) -> bool:
        services = getattr(app.state, "services", None)
        return services is not None and services.tokens.matches(token)

    templates: dict[object, str] = {r.endpoint: r.path for r in routes if isinstance(r, Route)}

    def route_of(scope: Scope) -> str:
        return templates.get(scope.get("endpoint"), "other")  # never the path: tokens

    proxies = TrustedProxies(settings.trusted_proxies)
    forwarded = (
        [Middleware(ProxyHeadersMiddleware, trusted_hosts=proxies.entries)] if proxies else []
    )
    app = Starlette(
        routes=routes,
        middleware=[
            # Outermost: sees the connection's own peer address, before any forwarded header.
            Middleware(Observe, is_trusted=proxies, route_of=route_of),
            *forwarded,
            Middleware(
                RateLimit,
                failures=settings.rate_limit_failures,
                per_token=settings.rate_limit_token,
                valid_token=valid_token,
            ),
            Middleware(ErrorShield),
        ],
        exception_handlers={ReceiverError: _receiver_error, HTTPException: _http_error},
        lifespan=lifespan,
    )
    return app


def create_app_from_env() -> Starlette:
    """The service for the ``RECEIVER_*`` environment: each ``serve --workers N`` process's app
    (uvicorn imports it by name, ``factory=True``). ``serve`` migrated before starting them."""
    settings = load_settings()
    configure(settings.log_level, settings.log_format)
    app = create_app(settings, migrate=False)
    freeze_startup_objects()
    return app


def freeze_startup_objects() -> None:
    """Move every object alive now (the imported libraries, the app) out of the collector's
    reach: they live as long as the process, and each full collection would scan them again.
    A serve process only (tests build many apps in one process). ``bench/webhooks.py``: server
    CPU per delivery 1.11 -> 0.87-0.98 ms (~15% of it was the cyclic collector re-scanning
    SQLAlchemy, pydantic and Starlette's objects)."""
    gc.freeze()
