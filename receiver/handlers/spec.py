"""The OpenAPI 3.1 document of the service, built from the code it describes.

Components are the ``model_json_schema`` of the models the handlers answer with
(``receiver.handlers.schemas``, ``receiver.kotani.models.OfframpRefundConfig``); the invoice
request's limits come from the validators' own constants and the settings; the console's
filters from its own tuples. ``build_spec(settings)`` is served at ``GET /openapi.json``;
``tests/test_openapi.py`` fails when the app serves a route this document does not describe.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from receiver.handlers import internal_api, kotani_webhook
from receiver.handlers import invoice_url as invoice
from receiver.handlers.spec_components import DESCRIPTION, components
from receiver.handlers.spec_console import console_paths
from receiver.handlers.spec_parts import (
    STRING,
    Json,
    json_answer,
    json_body,
    operation,
    parameter,
    schema_ref,
)
from receiver.inbox.models import EventStatus
from receiver.metrics import CONTENT_TYPE_LATEST
from receiver.settings import Settings

API_KEY: list[Json] = [{"apiKey": []}, {"apiKeyHeader": []}]


def _version() -> str:
    try:
        return version("kotani-receiver")
    except PackageNotFoundError:  # pragma: no cover (run from a source tree)
        return "0"


def _invoice_paths(settings: Settings) -> Json:
    token = parameter(
        "token",
        "path",
        {"type": "string", "minLength": 1},
        "The secret invoice token (RECEIVER_INVOICE_TOKENS): an unknown one is 404.",
    )
    request = json_body(schema_ref("InvoiceRequest"), "Any Content-Type is read as JSON.")
    refused = {400: None, 408: None, 413: f"Body over {invoice.BODY_LIMIT} bytes.", 415: None}
    return {
        "/invoices/{token}": {
            "post": operation(
                "generateInvoice",
                "generate_invoice_url: a verified invoice for the refund",
                tag="kotani",
                description="What Kotani POSTs to for a fresh refund invoice. The same request"
                " returns the same invoice while it is unpaid and valid long enough.",
                parameters=[token],
                body=request,
                answers={200: json_answer("A verified invoice.", schema_ref("InvoiceAnswer"))},
                errors={
                    **refused,
                    404: "`not_found`: unknown token.",
                    422: None,
                    503: "`mint.unavailable` (with `attempts`): no backend produced a verified"
                    " invoice in RECEIVER_DEADLINE; or `storage.unavailable`.",
                },
            )
        },
        "/refund-configs": {
            "post": operation(
                "createRefundConfig",
                "Option A refund_config for POST /api/v3/offramp",
                tag="kotani",
                parameters=[],
                body=request,
                security=[{"apiKey": []}],
                answers={
                    200: json_answer(
                        "The refund config (no `address`: Lightning only).",
                        schema_ref("OfframpRefundConfig"),
                    )
                },
                errors={**refused, 401: None, 422: None, 503: None},
            )
        },
    }


def _webhook_paths() -> Json:
    limit = f"Body over {kotani_webhook.BODY_LIMIT} bytes."
    accepted = {200: json_answer("Stored (or a duplicate).", schema_ref("WebhookAccepted"))}
    return {
        "/webhooks/kotani": {
            "post": operation(
                "receiveWebhook",
                "Kotani's signed webhook delivery",
                tag="webhooks",
                body=json_body(schema_ref("WebhookEnvelope")),
                security=[{"webhookSignature": []}],
                answers=accepted,
                errors={
                    400: "`request.invalid_json` / `webhook.malformed`: not a JSON envelope.",
                    401: "`webhook.unauthorized`: signature missing or invalid.",
                    408: None,
                    413: limit,
                    503: None,
                },
            )
        },
        "/webhooks/kotani/{token}": {
            "post": operation(
                "receiveDirectWebhook",
                "Direct mode: a delivery to the URL that carries its own secret",
                tag="webhooks",
                description="Off unless RECEIVER_DIRECT_TOKENS is set; refused beside"
                " RECEIVER_WEBHOOK_SECRETS unless RECEIVER_ALLOW_DIRECT_WITH_SECRETS=true."
                " Stored as an unverified hint: never acted on.",
                parameters=[
                    parameter(
                        "token",
                        "path",
                        {"type": "string", "minLength": 1},
                        "The direct-mode secret (RECEIVER_DIRECT_TOKENS).",
                    )
                ],
                body=json_body(schema_ref("DirectDelivery")),
                answers=accepted,
                errors={
                    400: "`request.invalid_json` / `webhook.malformed`.",
                    401: "`webhook.unauthorized`: it carries a signature that does not verify.",
                    404: "`not_found`: unknown token, or direct mode off.",
                    408: None,
                    413: limit,
                    503: None,
                },
            )
        },
    }


def _internal_paths() -> Json:
    digits = {
        "anyOf": [
            {"type": "integer", "minimum": 0, "maximum": 10**internal_api.DIGITS_MAX - 1},
            {"type": "string", "maxLength": 0},
        ]
    }
    event_id = parameter(
        "id", "path", {"type": "integer", "minimum": 0}, "The event's id (beyond any: 404)."
    )
    errors: dict[int, str | None] = {401: None, 404: None, 503: None}

    def get(operation_id: str, summary: str, answer: str, **extra: Any) -> Json:
        return operation(
            operation_id,
            summary,
            tag="internal",
            security=API_KEY,
            answers={200: json_answer(summary, schema_ref(answer))},
            errors=errors,
            **extra,
        )

    statuses = [s.value for s in EventStatus]
    filters = [
        parameter("status", "query", {"type": "string", "enum": statuses}, "Only this status."),
        parameter("type", "query", STRING, "Only this event type."),
        parameter("reference_id", "query", STRING, "Only this reference."),
        parameter("limit", "query", digits, "Page size (0 or absent: 50; at most 500)."),
        parameter("before", "query", digits, "Only ids below this (the previous next_before)."),
    ]
    return {
        "/events": {
            "get": operation(
                "listEvents",
                "Stored webhook events, newest first",
                tag="internal",
                security=API_KEY,
                parameters=filters,
                answers={200: json_answer("A page of events.", schema_ref("EventPage"))},
                errors={401: None, 422: "`request.validation`: a bad filter.", 503: None},
            )
        },
        "/events/{id}": {
            "get": get(
                "getEvent",
                "One event with its body and headers",
                "EventDetail",
                parameters=[event_id],
            )
        },
        "/events/{id}/replay": {
            "post": operation(
                "replayEvent",
                "Queue an event to be handled again (fresh attempt budget)",
                tag="internal",
                security=API_KEY,
                parameters=[event_id],
                answers={202: json_answer("Pending again.", schema_ref("ReplayAccepted"))},
                errors={**errors, 409: "`conflict`: the event is being handled right now."},
            )
        },
        "/refunds/{reference_id}": {
            "get": get(
                "getRefund",
                "Everything known about one reference's refund",
                "RefundView",
                parameters=[parameter("reference_id", "path", STRING, "Kotani's reference.")],
            )
        },
    }


def _service_paths() -> Json:
    def plain(operation_id: str, summary: str, answers: dict[int, Json]) -> Json:
        return operation(operation_id, summary, tag="service", answers=answers)

    ready = schema_ref("Readiness")
    return {
        "/healthz": {
            "get": operation(
                "healthz",
                "The process answers (no I/O)",
                tag="service",
                rate_limited=False,
                answers={200: json_answer("Alive.", schema_ref("Health"))},
            )
        },
        "/readyz": {
            "get": operation(
                "readyz",
                "Database and at least one backend reachable (cached a few seconds)",
                tag="service",
                rate_limited=False,
                answers={
                    200: json_answer("Ready.", ready),
                    503: json_answer("Not ready: the probes say why.", ready),
                },
            )
        },
        "/metrics": {
            "get": operation(
                "metrics",
                "Prometheus text exposition",
                tag="service",
                security=[{}, {"metricsToken": []}],
                answers={
                    200: {
                        "description": "The metric families.",
                        "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": STRING}},
                    }
                },
                errors={401: "`auth.unauthorized`: RECEIVER_METRICS_TOKEN is set and not sent."},
            )
        },
        "/openapi.json": {
            "get": plain(
                "openapi",
                "This document",
                {200: json_answer("OpenAPI 3.1.", {"type": "object"})},
            )
        },
        "/docs": {
            "get": plain(
                "docs",
                "This document as a page (no scripts)",
                {200: {"description": "HTML.", "content": {"text/html": {"schema": STRING}}}},
            )
        },
    }


def build_spec(settings: Settings) -> Json:
    """The whole document for an app built from ``settings``."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "kotani-receiver", "version": _version(), "description": DESCRIPTION},
        "tags": [
            {"name": "kotani", "description": "What Kotani calls, and Option A configs."},
            {"name": "webhooks", "description": "Kotani's webhook deliveries."},
            {"name": "internal", "description": "Read and replay, behind RECEIVER_API_KEY."},
            {"name": "service", "description": "Probes, metrics, this document."},
            {"name": "console", "description": "The operator console (HTML pages)."},
        ],
        "paths": {
            **_invoice_paths(settings),
            **_webhook_paths(),
            **_internal_paths(),
            **_service_paths(),
            **console_paths(),
        },
        "components": components(settings),
    }
