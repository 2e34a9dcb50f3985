"""The operator console at ``/console``: refunds, deliveries and replay, backends, export.

``console_routes(settings)`` is all the app mounts. Pages live in ``pages``, the door (login,
session, CSRF) in ``auth`` and ``web``, every read and action in ``data``.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from receiver.console import pages, web
from receiver.console.auth import Door
from receiver.console.export import download
from receiver.settings import Settings

__all__ = ["console_routes"]


class _WithDoor:
    """Pure ASGI: hands the console's door to its pages (``web.door``)."""

    def __init__(self, app: ASGIApp, door: Door) -> None:
        self.app = app
        self.door = door

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["console_door"] = self.door
        await self.app(scope, receive, send)


def console_routes(settings: Settings) -> list[BaseRoute]:
    """The console's routes; the door is built once from ``settings``."""
    router = Router(
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
    return [Mount("/console", app=_WithDoor(router, Door(settings)))]
