"""What every console page shares: templates, the session guard, login and logout.

``guarded(handler)`` wraps a page: without a valid session a GET is redirected to the login
page and a POST answers 403; a POST whose ``csrf`` field is not the session's answers 403. The
handler gets the request, the session and the ``ConsoleData``; it never sees the door. A bad
filter (``BadFilter``), ``NotFound`` and ``Conflict`` become 400, 404 and 409 pages.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from receiver.console.auth import COOKIE, Door, Session
from receiver.console.data import ConsoleData, StoreData
from receiver.errors import Conflict, NotFound, PayloadTooLarge, RequestTimeout
from receiver.handlers._body import read_body

if TYPE_CHECKING:
    from starlette.templating import Jinja2Templates

HERE = Path(__file__).parent
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
MAX_FORM = 4096
FORM_TYPE = "application/x-www-form-urlencoded"

Handler = Callable[[Request, Session, ConsoleData], Awaitable[Response]]


def door(request: Request) -> Door:
    console_door: Door = request.scope["console_door"]
    return console_door


def data(request: Request) -> ConsoleData:
    return StoreData.of_app(request.app.state)


@functools.cache
def templates() -> Jinja2Templates:
    """The page templates (autoescape on for .html), loaded on the first page rendered."""
    # Here, not at import: `refunds export` and every `serve` import this module, and Jinja2
    # (~20 modules) is needed only once a page is shown.
    from starlette.templating import Jinja2Templates

    return Jinja2Templates(directory=HERE / "templates")


def render(request: Request, name: str, context: dict[str, Any], *, status: int = 200) -> Response:
    response = templates().TemplateResponse(request, name, context, status_code=status)
    response.headers.update(HEADERS)
    return response


def redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303, headers=HEADERS)


def refuse(request: Request, message: str, status: int = 403) -> Response:
    return render(request, "refused.html", {"message": message}, status=status)


async def form(request: Request) -> dict[str, str]:
    """The POSTed urlencoded form, bounded (a console form is a few short fields); a body too
    long or not a form reads as empty, which every check then refuses."""
    if not request.headers.get("content-type", "").startswith(FORM_TYPE):
        return {}
    kept: dict[str, str] | None = getattr(request.state, "console_form", None)
    if kept is not None:  # the guard and the page share one read
        return kept
    parsed: dict[str, str] = {}
    try:
        # Bounded in size and time, as every other body: a slow or endless form holds nothing.
        body = await read_body(request, MAX_FORM)
        parsed = dict(parse_qsl(body.decode("utf-8"), max_num_fields=20))
    except (PayloadTooLarge, RequestTimeout, UnicodeDecodeError, ValueError):
        pass
    request.state.console_form = parsed
    return parsed


def guarded(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def page(request: Request) -> Response:
        the_door = door(request)
        if not the_door.enabled:
            return render(request, "disabled.html", {}, status=503)
        session = the_door.session(request)
        if request.method == "POST":
            if session is None:
                return refuse(request, "Not logged in (or the session expired).")
            if not the_door.csrf_ok(session, (await form(request)).get("csrf")):
                return refuse(
                    request, "The form's CSRF token is missing or wrong; reload the page."
                )
        elif session is None:
            return redirect("/console/login")
        try:
            return await handler(request, session, data(request))
        except BadFilter as exc:
            return refuse(request, str(exc), 400)
        except NotFound as exc:
            return refuse(request, f"Not found: {exc.message}.", 404)
        except Conflict as exc:
            return refuse(request, exc.message, 409)

    page.__name__ = handler.__name__
    return page


class BadFilter(ValueError):
    """A query parameter a page cannot use; the guard answers it with a 400 page."""


def parse_since(text: str) -> datetime | None:
    """``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM[:SS]`` (UTC unless it says otherwise); "" is None."""
    text = text.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadFilter("since must be a date (YYYY-MM-DD) or a date and time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def login_page(request: Request) -> Response:
    the_door = door(request)
    if not the_door.enabled:
        return render(request, "disabled.html", {}, status=503)
    if request.method == "GET":
        if the_door.session(request) is not None:
            return redirect("/console/")
        return render(request, "login.html", {})
    if not await the_door.login_allowed(request):
        return render(
            request,
            "login.html",
            {"error": "Too many failed logins; wait a few minutes."},
            status=429,
        )
    given = (await form(request)).get("api_key")
    if not isinstance(given, str) or not the_door.key_matches(given):
        await the_door.login_failed(request)
        return render(request, "login.html", {"error": "Wrong API key."}, status=401)
    _, cookie = the_door.new_cookie()
    response = redirect("/console/")
    response.set_cookie(COOKIE, cookie, **the_door.cookie_options(request))  # type: ignore[arg-type]
    return response


async def _logout(request: Request, session: Session, _: ConsoleData) -> Response:
    response = redirect("/console/login")
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")
    return response


logout = guarded(_logout)
