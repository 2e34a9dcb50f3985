"""The console's pages: refunds, one refund, deliveries (with replay), backends and bridge.

Each reads through ``ConsoleData`` only. Filters arrive as query parameters and are checked
here; a bad one is a 400 page that says which, never a 500 (see ``web.guarded``).
"""

from __future__ import annotations

import qrcode
from qrcode.image.svg import SvgPathImage
from starlette.requests import Request
from starlette.responses import Response

from receiver.console.auth import Session
from receiver.console.data import EVENT_STATUSES, REFUND_STATES, ConsoleData, RefundFilters
from receiver.console.web import form, guarded, parse_since, redirect, refuse, render


def qr_svg(bolt11: str) -> str:
    """The invoice as an inline SVG QR code (upper case: the alphanumeric mode is denser)."""
    image = qrcode.make(f"lightning:{bolt11}".upper(), image_factory=SvgPathImage, box_size=8)
    svg = image.to_string()
    return svg.decode("utf-8") if isinstance(svg, bytes) else str(svg)


def sats(msat: int | None) -> str:
    if msat is None:
        return ""
    whole, rest = divmod(msat, 1000)
    return f"{whole:,}" if not rest else f"{whole:,}.{rest:03d}"


async def _refunds(request: Request, session: Session, data: ConsoleData) -> Response:
    params = request.query_params
    state = params.get("state", "")
    search = params.get("q", "").strip()[:128]
    if state and state not in REFUND_STATES:
        return refuse(request, f"state must be one of {', '.join(REFUND_STATES)}", 400)
    since = parse_since(params.get("since", ""))
    refunds = await data.list_refunds(RefundFilters(state=state, search=search, since=since))
    return render(
        request,
        "refunds.html",
        {
            "csrf": session.csrf,
            "nav": "refunds",
            "refunds": refunds,
            "states": REFUND_STATES,
            "state": state,
            "q": search,
            "since": params.get("since", ""),
            "sats": sats,
        },
    )


async def _refund(request: Request, session: Session, data: ConsoleData) -> Response:
    reference = str(request.path_params["reference"])
    view = await data.refund_timeline(reference)
    bolt11 = (view.get("refund") or {}).get("bolt11")
    return render(
        request,
        "refund.html",
        {
            "csrf": session.csrf,
            "nav": "refunds",
            "view": view,
            "qr": qr_svg(bolt11) if bolt11 else None,
            "sats": sats,
        },
    )


async def _events(request: Request, session: Session, data: ConsoleData) -> Response:
    params = request.query_params
    status = params.get("status", "")
    if status and status not in EVENT_STATUSES:
        return refuse(request, f"status must be one of {', '.join(EVENT_STATUSES)}", 400)
    since = parse_since(params.get("since", ""))
    event_type = params.get("type", "").strip()[:200]
    reference = params.get("reference", "").strip()[:128]
    events = await data.list_events(status, event_type, reference, since)
    return render(
        request,
        "events.html",
        {
            "csrf": session.csrf,
            "nav": "events",
            "events": events,
            "statuses": EVENT_STATUSES,
            "status": status,
            "type": event_type,
            "reference": reference,
            "since": params.get("since", ""),
            "notice": params.get("notice", "")[:200],
        },
    )


async def _event(request: Request, session: Session, data: ConsoleData) -> Response:
    event_id = int(request.path_params["id"])
    event = await data.get_event(event_id)
    return render(request, "event.html", {"csrf": session.csrf, "nav": "events", "event": event})


async def _replay(request: Request, session: Session, data: ConsoleData) -> Response:
    event_id = int(request.path_params["id"])
    await data.replay(event_id)
    back = (await form(request)).get("back")
    target = back if isinstance(back, str) and back.startswith("/console/") else "/console/events"
    separator = "&" if "?" in target else "?"
    return redirect(f"{target}{separator}notice=delivery+{event_id}+queued+for+replay")


async def _replay_dead(request: Request, session: Session, data: ConsoleData) -> Response:
    """GET: the confirmation (how many, which); POST with confirm=yes: replay them."""
    source = request.query_params if request.method == "GET" else await form(request)
    text = source.get("since")
    try:
        since = parse_since(text if isinstance(text, str) else "")
    except ValueError:
        since = None
    if since is None:
        return refuse(request, "Give the date to replay dead deliveries from (since).", 400)
    if request.method == "GET":
        ids = await data.dead_since(since)
        return render(
            request,
            "replay_dead.html",
            {"csrf": session.csrf, "nav": "events", "since": text, "ids": ids},
        )
    if source.get("confirm") != "yes":
        return redirect("/console/events?status=dead")
    count = await data.replay_dead_since(since)
    return redirect(f"/console/events?notice={count}+dead+deliveries+queued+for+replay")


async def _backends(request: Request, session: Session, data: ConsoleData) -> Response:
    return render(
        request,
        "backends.html",
        {
            "csrf": session.csrf,
            "nav": "backends",
            "backends": await data.backends_health(),
            "deposits": await data.bridge_deposits(),
            "sats": sats,
        },
    )


refunds = guarded(_refunds)
refund = guarded(_refund)
events = guarded(_events)
event = guarded(_event)
replay = guarded(_replay)
replay_dead = guarded(_replay_dead)
backends = guarded(_backends)
