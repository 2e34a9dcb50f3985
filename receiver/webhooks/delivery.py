"""What one accepted webhook delivery is, before it is stored: type, reference, dedup key.

Two shapes arrive (CONTRACT.md §3):

- the signed envelope ``{"event", "data", "signature"}`` (also accepted unsigned on the token URL
  or with ``RECEIVER_ALLOW_UNSIGNED=true``);
- direct mode: the bare transaction object posted to a transaction's callback URL, and the
  crypto-bridge ``callback_url`` payloads, whose shape is undocumented. Those are stored whole as
  event type ``direct.transaction`` and keyed by ``kotani_reference_id``,
  ``provider_reference_id``, ``referenceId`` or ``reference_id``, whichever comes first.

The dedup key hashes the canonical form of the content (keys sorted, numbers as JS prints them):
Kotani sends no event id, and a redelivery may be re-serialised in another key order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from receiver.webhooks import jsjson
from receiver.webhooks.errors import WebhookMalformed
from receiver.webhooks.jsjson import JSValue
from receiver.webhooks.signature import MAX_EVENT_LENGTH, dedup_key

DIRECT_EVENT: Final = "direct.transaction"
REFERENCE_FIELDS: Final = (
    "kotani_reference_id",
    "provider_reference_id",
    "referenceId",
    "reference_id",
)
REFERENCE_MAX: Final = 128

# Never stored: credentials a proxy or the integrator's own tooling may add.
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery as the inbox stores it."""

    event_type: str
    data: dict[str, JSValue]
    reference_id: str | None
    dedup_key: str


def reference_of(data: Mapping[str, JSValue]) -> str | None:
    """The first usable reference field (a non-blank string of at most 128 characters)."""
    for name in REFERENCE_FIELDS:
        value = data.get(name)
        if isinstance(value, str) and value.strip() and len(value) <= REFERENCE_MAX:
            return value
    return None


def envelope_delivery(event: str, data: dict[str, JSValue]) -> Delivery:
    """A delivery from the ``{event, data}`` envelope (signed or not)."""
    return Delivery(event, data, reference_of(data), dedup_key(event, data))


def direct_delivery(body: dict[str, JSValue]) -> Delivery:
    """A delivery from a bare object (direct mode, crypto-bridge callbacks)."""
    canonical = jsjson.dumps({"direct": body}, sort_keys=True)
    key = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return Delivery(DIRECT_EVENT, body, reference_of(body), key)


def classify(raw: bytes, parsed: JSValue | None = None) -> Delivery:
    """An unsigned body: the envelope when it is one, else a direct-mode object.

    ``parsed`` is ``jsjson.loads(raw)`` when the caller has it already.
    """
    body = jsjson.loads(raw) if parsed is None else parsed
    if not isinstance(body, dict):
        raise WebhookMalformed("the body is not a JSON object")
    event, data = body.get("event"), body.get("data")
    if isinstance(event, str) and event and isinstance(data, dict):
        if len(event) > MAX_EVENT_LENGTH:
            raise WebhookMalformed("`event` is too long")
        return envelope_delivery(event, data)
    return direct_delivery(body)


def has_signature(raw_body: dict[str, JSValue] | None, header: str | None) -> bool:
    """Whether the sender signed (header, or the body's ``signature`` field)."""
    if header is not None and header.strip():
        return True
    return raw_body is not None and isinstance(raw_body.get("signature"), str)


def storable_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The request headers worth keeping with the event (credentials dropped)."""
    kept: dict[str, str] = {}
    for name, value in headers:
        lower = name.lower()
        if lower not in _SECRET_HEADERS:
            kept[lower] = value if lower not in kept else f"{kept[lower]}, {value}"
    return kept
