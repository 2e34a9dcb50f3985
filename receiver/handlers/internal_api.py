"""The internal read/replay API, behind ``RECEIVER_API_KEY``.

    GET  /events?status=dead&type=…&reference_id=…&limit=50&before=<id>
    GET  /events/{id}
    POST /events/{id}/replay          -> 202, the event is pending again (fresh attempt budget)
    GET  /refunds/{reference_id}

The key is sent as ``Authorization: Bearer <key>`` (or ``X-API-Key``) and compared in constant
time. Without ``RECEIVER_API_KEY`` the API is off: every call is 401.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from receiver.errors import Unauthorized, ValidationFailed
from receiver.handlers.schemas import EventDetail, EventPage, RefundView, ReplayAccepted
from receiver.inbox import queries
from receiver.inbox.models import EventStatus
from receiver.runtime import WebhookRuntime


def _runtime(request: Request) -> WebhookRuntime:
    runtime: WebhookRuntime = request.app.state.webhooks
    key = runtime.services.settings.api_key
    given = request.headers.get("x-api-key") or ""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        given = credentials.strip()
    expected = b"" if key is None else key.get_secret_value().encode()
    ok = hmac.compare_digest(expected, given.encode("utf-8", "surrogateescape"))
    if key is None or not expected or not ok:
        raise Unauthorized("missing or wrong API key (RECEIVER_API_KEY)")
    return runtime


DIGITS_MAX = 12
"""The most digits ``limit`` and ``before`` may have."""


def _int(value: str | None, name: str, default: int | None) -> int | None:
    if value is None or value == "":
        return default
    # isascii: str.isdigit() is also true of "²" and other digits int() refuses.
    if not (value.isascii() and value.isdigit()) or len(value) > DIGITS_MAX:
        raise ValidationFailed(f"{name} must be a positive integer")
    return int(value)


async def list_events(request: Request) -> JSONResponse:
    runtime = _runtime(request)
    params = request.query_params
    status = params.get("status")
    if status is not None and status not in EventStatus.__members__.values():
        allowed = ", ".join(s.value for s in EventStatus)
        raise ValidationFailed(f"status must be one of {allowed}")
    limit = _int(params.get("limit"), "limit", 50) or 50
    events = await queries.list_events(
        runtime.services.db,
        status=EventStatus(status) if status else None,
        event_type=params.get("type"),
        reference_id=params.get("reference_id"),
        limit=limit,
        before=_int(params.get("before"), "before", None),
    )
    following = events[-1]["id"] if len(events) == min(limit, queries.MAX_PAGE) else None
    page = EventPage.model_validate({"events": events, "next_before": following})
    return JSONResponse(page.answer())


async def show_event(request: Request) -> JSONResponse:
    runtime = _runtime(request)
    event = await queries.get_event(runtime.services.db, int(request.path_params["id"]))
    return JSONResponse(EventDetail.model_validate(event).answer())


async def replay_event(request: Request) -> JSONResponse:
    runtime = _runtime(request)
    event_id = int(request.path_params["id"])
    await runtime.inbox.replay(event_id)
    answer = ReplayAccepted(event_id=event_id, status="pending")
    return JSONResponse(answer.answer(), status_code=202)


async def show_refund(request: Request) -> JSONResponse:
    runtime = _runtime(request)
    reference_id = str(request.path_params["reference_id"])
    view = await queries.refund_view(runtime.services.db, reference_id)
    return JSONResponse(RefundView.model_validate(view).answer())


def routes() -> list[Route]:
    return [
        Route("/events", list_events, methods=["GET"]),
        Route("/events/{id:int}", show_event, methods=["GET"]),
        Route("/events/{id:int}/replay", replay_event, methods=["POST"]),
        Route("/refunds/{reference_id}", show_refund, methods=["GET"]),
    ]
