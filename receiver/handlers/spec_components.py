"""The OpenAPI document's components: the answers' schemas (``model_json_schema`` of the models
the handlers serialise with), the request bodies the handlers validate by hand (from the
validators' own constants and the settings), and the security schemes.
"""

from __future__ import annotations

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from receiver.handlers import invoice_url as invoice
from receiver.handlers.schemas import ANSWERS
from receiver.handlers.spec_parts import STRING, Json, schema_ref
from receiver.kotani.models import OfframpRefundConfig
from receiver.settings import Settings
from receiver.webhooks.signature import MAX_EVENT_LENGTH

DESCRIPTION = """\
The integrator's side of Kotani Pay's Lightning refunds.

Every JSON error is `{"error": {"code", "message"}}` (`ErrorBody`) with the status listed on
its operation; nothing is answered with a 500. On every route but `/healthz` and `/readyz`, a
client IP that has caused too many refusals is answered 429 (with `Retry-After`) before its
request is read. A path no route serves is 404 `not_found`; a method a path does not serve is
405 `method_not_allowed` with `Allow` (HEAD is served wherever GET is).

Credentials: the invoice URL and the direct-mode webhook URL carry their secret in the path
(`{token}`; OpenAPI has no path-located security scheme, so they are path parameters; an
unknown token is 404 and is never echoed or logged). The internal API and `/refund-configs`
take `RECEIVER_API_KEY` as a bearer token; `/metrics` takes `RECEIVER_METRICS_TOKEN` when one
is set; signed webhooks carry `X-Kotani-Signature: sha256=<HMAC-SHA256 of
JSON.stringify({event, data})>` under one of `RECEIVER_WEBHOOK_SECRETS`; the console takes a
session cookie from its login form and a CSRF field on every POST.
"""

SECURITY_SCHEMES: Json = {
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer <RECEIVER_API_KEY>` (constant-time compare).",
    },
    "apiKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "`RECEIVER_API_KEY` in its own header (internal API only).",
    },
    "metricsToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "`RECEIVER_METRICS_TOKEN`; only when it is set.",
    },
    "webhookSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Kotani-Signature",
        "description": "`sha256=<hex HMAC-SHA256>` of `JSON.stringify({event, data})` under one"
        " of `RECEIVER_WEBHOOK_SECRETS` (the body's `signature` field when the header is"
        " absent). Without a signature a delivery is accepted only with"
        " `RECEIVER_ALLOW_UNSIGNED=true`.",
    },
    "consoleSession": {
        "type": "apiKey",
        "in": "cookie",
        "name": "kr_console",
        "description": "The console's signed session cookie, set by `POST /console/login`.",
    },
}


def components(settings: Settings) -> Json:
    """The models' schemas, plus the request bodies the handlers validate by hand."""
    models: list[type[BaseModel]] = [*ANSWERS, OfframpRefundConfig]
    _, top = models_json_schema(
        [(m, "serialization") for m in models],
        ref_template="#/components/schemas/{model}",
    )
    schemas: Json = dict(top["$defs"])
    allowed, blank = invoice.reference_patterns()
    schemas["Reference"] = {
        "type": "string",
        "minLength": 1,
        "maxLength": invoice.REFERENCE_MAX,
        "pattern": allowed,
        "not": {"pattern": blank},
        "description": "Kotani's reference: not blank, at most 128 characters, none of them a"
        " control, format (bidi, zero-width), private-use, unassigned or line/paragraph"
        " separator character.",
    }
    either = {"anyOf": [schema_ref("Reference"), {"type": "null"}]}
    schemas["InvoiceRequest"] = {
        "type": "object",
        "description": "Unknown fields are ignored. `referenceId` is accepted for"
        " `reference_id`; send one of them (a null one counts as absent). Both, equal, are"
        " accepted as one reference (JSON Schema cannot compare two values); both, different,"
        " are refused (422).",
        "properties": {
            "amount_msat": {
                "type": "integer",
                "minimum": 1,
                "maximum": settings.max_amount_msat,
                "description": "A JSON integer literal, at most RECEIVER_MAX_AMOUNT_MSAT: a"
                " float, string or boolean is refused (422), `404.0` too, though JSON"
                " Schema's integer admits it: an amount is never read from a float.",
            },
            "reference_id": either,
            "referenceId": either,
        },
        "required": ["amount_msat"],
        "anyOf": [
            {"required": [name], "properties": {name: schema_ref("Reference")}}
            for name in ("reference_id", "referenceId")
        ],
        "not": {
            "required": ["reference_id", "referenceId"],
            "properties": {"reference_id": STRING, "referenceId": STRING},
        },
    }
    event = {"type": "string", "minLength": 1, "maxLength": MAX_EVENT_LENGTH}
    schemas["WebhookEnvelope"] = {
        "type": "object",
        "description": "Kotani's signed delivery; other fields are stored with it.",
        "properties": {
            "event": event,
            "data": {"type": "object"},
            "signature": {
                "description": "Read (as a string) only when X-Kotani-Signature is absent.",
            },
        },
        "required": ["event", "data"],
    }
    schemas["DirectDelivery"] = {
        "type": "object",
        "description": "The bare transaction object (or a crypto-bridge callback), stored"
        " whole. An `{event, data}` envelope in it is read as one: its `event` must then be at"
        f" most {MAX_EVENT_LENGTH} characters.",
        "not": {
            "required": ["event", "data"],
            "properties": {
                "event": {"type": "string", "minLength": MAX_EVENT_LENGTH + 1},
                "data": {"type": "object"},
            },
        },
    }
    return {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES}
