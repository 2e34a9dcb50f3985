"""The operator console at ``/console``: refunds, deliveries and replay, backends, export.

``console_routes(settings)`` is all the app mounts. Pages live in ``pages``, the door (login,
session, CSRF) in ``auth`` and ``web``, every read and action in ``data``. The pages are
imported on the console's first request, not at start (see ``_Console``).
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import Receive, Scope, Send

from receiver.console.auth import Door
from receiver.settings import Settings

__all__ = ["console_routes"]


def _router() -> Router:
    # On the first console request: the pages bring qrcode, and Jinja2 with the first page
    # rendered (~50 modules, ~3 MB together), which a receiver whose console nobody opens never
    # needs.
    from starlette.staticfiles import StaticFiles

    from receiver.console import pages, web
    from receiver.console.export import download

    return Router(
        routes=[
            Route("/", pages.refunds, methods=["GET"]),
            Route("/login", web.login_page, methods=["GET", "POST"]),
            Route("/logout", web.logout, methods=["POST"]),
            Route("/refunds/export", download, methods=["GET"]),
            Route("/refunds/{reference}", pages.refund, methods=["GET"]),
            Route("/events", pages.events, methods=["GET"]),
            Route("/events/replay-dead", pages.replay_dead, methods=["GET", "POST"]),
            Route("/events/{id:int}", pages.event, methods=["GET"]),
            Route("/events/{id:int}/replay", pages.replay, methods=["POST"]),
            Route("/backends", pages.backends, methods=["GET"]),
            Mount("/static", app=StaticFiles(directory=web.HERE / "static"), name="static"),
        ]
    )


class _Console:
    """Pure ASGI: the console's router (built on the first request, or when its ``routes`` are
    listed) with its door in the scope (``web.door``)."""

    def __init__(self, door: Door) -> None:
        self.door = door
        self._router: Router | None = None

    def _built(self) -> Router:
        if self._router is None:
            self._router = _router()
        return self._router

    @property
    def routes(self) -> list[BaseRoute]:
        """What ``Mount.routes`` lists (``url_path_for``, the OpenAPI tests' walk)."""
        return self._built().routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["console_door"] = self.door
        await self._built()(scope, receive, send)


def console_routes(settings: Settings) -> list[BaseRoute]:
    """The console's routes; the door is built once from ``settings``."""
    return [Mount("/console", app=_Console(Door(settings)))]
