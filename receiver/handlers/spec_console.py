"""The operator console's routes in the OpenAPI document: HTML pages behind a session cookie.

A GET without a valid session is redirected (303) to the login page; a POST without one, or
whose ``csrf`` form field is not the session's, is a 403 page. Filters come from the console's
own tuples (``receiver.console.data``); the static files from its ``static`` folder.
"""

from __future__ import annotations

from receiver.console import web
from receiver.console.data import EVENT_STATUSES, REFUND_STATES
from receiver.handlers.spec_parts import (
    SEE_OTHER,
    STRING,
    Json,
    form_body,
    html_answer,
    operation,
    parameter,
)

SESSION: list[Json] = [{"consoleSession": []}]
CSRF = {"type": "string", "description": "The session's CSRF token (every page's forms)."}
DATE = {
    "type": "string",
    "format": "date",
    "description": "YYYY-MM-DD (a date and time, YYYY-MM-DDTHH:MM[:SS], is read too); UTC"
    " unless it says otherwise.",
}
NO_ROUTE: dict[int, str | None] = {
    404: "`not_found`: the path matches no route (an id that is not a whole number)."
}
EMPTY = {"type": "string", "maxLength": 0}
SINCE = {"anyOf": [DATE, EMPTY], "description": "A date, or empty for no bound."}


def _choice(values: tuple[str, ...] | list[str], what: str) -> Json:
    return {"type": "string", "enum": ["", *values], "description": f"{what}; empty: any."}


EXPORT: Json = {
    "description": "A download (Content-Disposition: attachment).",
    "content": {"text/csv": {"schema": STRING}, "application/json": {"schema": {}}},
}
DISABLED = "The console is off: RECEIVER_API_KEY is not set."


def _page(
    operation_id: str,
    summary: str,
    *,
    parameters: list[Json] | None = None,
    refusals: dict[int, str] | None = None,
    ok: Json | None = None,
    errors: dict[int, str | None] | None = None,
) -> Json:
    answers: dict[int, Json] = {
        200: ok or html_answer("The page."),
        303: SEE_OTHER | {"description": "No valid session: to /console/login."},
        503: html_answer(DISABLED),
    }
    for status, text in (refusals or {}).items():
        answers[status] = html_answer(text)
    return operation(
        operation_id,
        summary,
        tag="console",
        parameters=parameters,
        answers=answers,
        errors=errors,
        security=SESSION,
    )


def _action(
    operation_id: str,
    summary: str,
    fields: dict[str, Json],
    *,
    required: tuple[str, ...] | list[str] = (),
    errors: dict[int, str | None] | None = None,
    **refusals: str,
) -> Json:
    answers: dict[int, Json] = {
        303: SEE_OTHER | {"description": "Done: back to a page that says so."},
        403: html_answer("No valid session, or the CSRF field is missing or wrong."),
        503: html_answer(DISABLED),
    }
    for status, text in refusals.items():
        answers[int(status.removeprefix("s"))] = html_answer(text)
    return operation(
        operation_id,
        summary,
        tag="console",
        body=form_body({"csrf": CSRF, **fields}, ["csrf", *required]),
        answers=answers,
        errors=errors,
        security=SESSION,
    )


def console_paths() -> Json:
    bad_filter = {400: "A filter it cannot use (the page says which)."}
    event_id = parameter("id", "path", {"type": "integer", "minimum": 0}, "The event's id.")
    refund_filters = [
        parameter("state", "query", _choice(REFUND_STATES, "State"), "State."),
        parameter("q", "query", STRING, "Search in references (first 128 characters)."),
        parameter("since", "query", SINCE, "Created on or after."),
    ]
    event_filters = [
        parameter("status", "query", _choice(EVENT_STATUSES, "Status"), "Status."),
        parameter("type", "query", STRING, "Event type."),
        parameter("reference", "query", STRING, "Reference."),
        parameter("since", "query", SINCE, "Received on or after."),
        parameter("notice", "query", STRING, "A line to show (after an action)."),
    ]
    static = sorted(p.name for p in (web.HERE / "static").iterdir() if p.is_file())
    login_answers: dict[int, Json] = {
        200: html_answer("The login form."),
        303: SEE_OTHER | {"description": "Already logged in: to /console/."},
        503: html_answer(DISABLED),
    }
    return {
        "/console/": {
            "get": _page(
                "consoleRefunds", "Refunds", parameters=refund_filters, refusals=bad_filter
            )
        },
        "/console/login": {
            "get": operation(
                "consoleLoginPage", "The login form", tag="console", answers=login_answers
            ),
            "post": operation(
                "consoleLogin",
                "Log in with RECEIVER_API_KEY",
                tag="console",
                body=form_body({"api_key": STRING}, ["api_key"]),
                answers={
                    303: {
                        "description": "Logged in: the session cookie is set.",
                        "headers": {
                            "Location": {"required": True, "schema": STRING},
                            "Set-Cookie": {"required": True, "schema": STRING},
                        },
                    },
                    401: html_answer("Wrong API key."),
                    429: html_answer("Too many failed logins from this IP (10 in 15 minutes)."),
                    503: html_answer(DISABLED),
                },
            ),
        },
        "/console/logout": {"post": _action("consoleLogout", "Log out", {})},
        "/console/refunds/export": {
            "get": _page(
                "consoleExport",
                "Reconciliation rows as a download",
                parameters=[
                    parameter(
                        "format",
                        "query",
                        {"type": "string", "enum": ["csv", "json"]},
                        "csv (default) or json.",
                    ),
                    refund_filters[0],
                    refund_filters[2],
                ],
                refusals=bad_filter,
                ok=EXPORT,
            ),
        },
        "/console/refunds/{reference}": {
            "get": _page(
                "consoleRefund",
                "One refund: timeline and invoice QR code",
                parameters=[parameter("reference", "path", STRING, "Kotani's reference.")],
                refusals={404: "Nothing is known about this reference."},
                errors=NO_ROUTE,
            )
        },
        "/console/events": {
            "get": _page(
                "consoleEvents", "Webhook deliveries", parameters=event_filters, refusals=bad_filter
            )
        },
        "/console/events/replay-dead": {
            "get": _page(
                "consoleReplayDeadConfirm",
                "Confirm replaying dead deliveries since a date",
                parameters=[parameter("since", "query", DATE, "From this date.", required=True)],
                refusals={400: "since is missing or not a date."},
            ),
            "post": _action(
                "consoleReplayDead",
                "Replay dead deliveries since a date",
                {"since": DATE, "confirm": {"type": "string", "enum": ["yes"]}},
                required=["since"],
                s400="since is missing or not a date.",
            ),
        },
        "/console/events/{id}": {
            "get": _page(
                "consoleEvent",
                "One delivery",
                parameters=[event_id],
                refusals={404: "No such delivery."},
                errors=NO_ROUTE,
            )
        },
        "/console/events/{id}/replay": {
            "post": {
                **_action(
                    "consoleReplay",
                    "Replay one delivery",
                    {"back": {"type": "string", "description": "A /console/ page to return to."}},
                    s404="No such delivery.",
                    errors=NO_ROUTE,
                    s409="The delivery is being handled right now.",
                ),
                "parameters": [event_id],
            }
        },
        "/console/backends": {"get": _page("consoleBackends", "Backends and bridge deposits")},
        "/console/static/{file}": {
            "get": operation(
                "consoleStatic",
                "The console's stylesheet",
                tag="console",
                parameters=[
                    parameter(
                        "file",
                        "path",
                        {"type": "string", "enum": static},
                        "A file of the console's static folder.",
                    )
                ],
                answers={
                    200: {"description": "The file.", "content": {"text/css": {"schema": STRING}}},
                    304: {"description": "Not modified (If-None-Match / If-Modified-Since)."},
                },
                errors={404: None},
            )
        },
    }
