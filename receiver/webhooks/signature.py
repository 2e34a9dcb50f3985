"""Verify a signed Kotani webhook: ``X-Kotani-Signature: sha256=<hex>`` over JSON.stringify.

Kotani signs ``"sha256=" + hex(HMAC_SHA256(secret, JSON.stringify({event, data})))`` and sends
``{"event", "data", "signature"}`` with the same value in the ``X-Kotani-Signature`` header
(CONTRACT.md §3; Kotani's v3 docs, "Webhooks"). The header is the source of truth; the body's
``signature`` is only read when the header is absent.

The signed bytes are tried in two ways and either may match:

1. cut from the raw body, when it is the compact ``{"event":…,"data":…,"signature":"…"}`` (or
   ``{"signature":"…","event":…,"data":…}``) that JSON.stringify itself produces: whatever the
   payload holds, those bytes are exactly what was signed;
2. rebuilt from the parsed body by ``jsjson.dumps`` (JS-exact), for every other spelling: another
   key order, pretty-printing, ``1.50`` for ``1.5``, ``\\u00e9`` for ``é``...

Every secret of ``RECEIVER_WEBHOOK_SECRETS`` is tried (rotation) against every candidate, each
with ``hmac.compare_digest``, without stopping at the first match. Any failure (no signature,
not hex, wrong length, wrong secret, tampered body) is the same ``WebhookUnauthorized``.
Malformed bodies fail as ``InvalidJSON`` / ``WebhookMalformed``; nothing else escapes.

Modelled on standard-webhooks' ``libraries/python`` verifier (raw bytes, constant-time compare,
several candidates), minus its leaking ``ValueError``s.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import SecretStr

from receiver.webhooks import jsjson
from receiver.webhooks.errors import WebhookMalformed, WebhookUnauthorized
from receiver.webhooks.jsjson import JSValue

SIGNATURE_HEADER: Final = "x-kotani-signature"
MAX_EVENT_LENGTH: Final = 200

_SIGNATURE = re.compile(r"\s*(?:sha256=)?([0-9a-fA-F]{64})\s*", re.IGNORECASE)
# The compact forms JSON.stringify produces for {event, data, signature} / {signature, ...}.
_TAIL = re.compile(rb',"signature":"[^"\\]*"\}\Z')
_HEAD = re.compile(rb'\A\{"signature":"[^"\\]*",(?="event":)')

Form = Literal["raw", "rebuilt"]


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed ``{"event", "data", "signature"?}`` body (numbers keep their source text)."""

    event: str
    data: dict[str, JSValue]
    signature: str | None
    body: dict[str, JSValue]


@dataclass(frozen=True, slots=True)
class VerifiedWebhook:
    """A delivery whose signature matched: what was signed and how it was found."""

    event: str
    data: dict[str, JSValue]
    form: Form
    """Which candidate matched: bytes cut from the raw body, or the JS rebuild."""
    secret_index: int
    """Position of the matching secret in RECEIVER_WEBHOOK_SECRETS (0 = current)."""

    @property
    def signed(self) -> bytes:
        """JSON.stringify({event, data}) as rebuilt here (what Kotani signed)."""
        return signed_bytes(self.event, self.data)

    @property
    def dedup_key(self) -> str:
        return dedup_key(self.event, self.data)


def parse_envelope(raw: bytes, parsed: JSValue | None = None) -> Envelope:
    """Parse a signed-mode body; InvalidJSON if not JSON, WebhookMalformed if no envelope.

    ``parsed`` is ``jsjson.loads(raw)`` when the caller has it already.
    """
    body = jsjson.loads(raw) if parsed is None else parsed
    if not isinstance(body, dict):
        raise WebhookMalformed("the body is not a JSON object")
    event = body.get("event")
    if not isinstance(event, str) or not event or len(event) > MAX_EVENT_LENGTH:
        raise WebhookMalformed("`event` must be a non-empty string")
    data = body.get("data")
    if not isinstance(data, dict):
        raise WebhookMalformed("`data` must be a JSON object")
    signature = body.get("signature")
    return Envelope(
        event=event,
        data=data,
        signature=signature if isinstance(signature, str) else None,
        body=body,
    )


def signed_bytes(event: str, data: JSValue) -> bytes:
    """``JSON.stringify({event, data})`` encoded as UTF-8 (what Node's HMAC ``update`` hashes)."""
    return jsjson.dumps({"event": event, "data": data}).encode("utf-8")


def dedup_key(event: str, data: JSValue) -> str:
    """A stable key for one delivery's content, independent of key order and number spelling.

    Kotani sends no event id; a redelivery carries the same content (perhaps re-serialised in
    another key order), so the key is a hash of the canonical form of ``{event, data}``.
    """
    canonical = jsjson.dumps({"event": event, "data": data}, sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def sign(secret: str, message: bytes) -> str:
    """``sha256=<hex>`` as Kotani computes it (used by tests, the bench and the simulator)."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def _expected_digest(header: str | None, body_signature: str | None) -> bytes:
    chosen = header if header is not None and header.strip() else body_signature
    if chosen is None:
        raise WebhookUnauthorized()
    match = _SIGNATURE.fullmatch(chosen)
    if match is None:
        raise WebhookUnauthorized()
    return bytes.fromhex(match.group(1))


def _raw_candidates(raw: bytes) -> list[bytes]:
    found = []
    if raw.startswith(b'{"event":'):
        tail = _TAIL.search(raw)
        if tail is not None:
            found.append(raw[: tail.start()] + b"}")
    head = _HEAD.match(raw)
    if head is not None:
        found.append(b"{" + raw[head.end() :])
    return found


def verify(
    raw: bytes,
    header: str | None,
    secrets: Sequence[SecretStr],
    *,
    parsed: JSValue | None = None,
) -> VerifiedWebhook:
    """Authenticate one signed delivery or raise; see the module docstring for the rules.

    ``parsed`` is ``jsjson.loads(raw)`` when the caller has parsed the body already.
    """
    envelope = parse_envelope(raw, parsed)
    expected = _expected_digest(header, envelope.signature)
    keys = [secret.get_secret_value().encode("utf-8") for secret in secrets]
    match = _first_match(keys, [("raw", c) for c in _raw_candidates(raw)], expected)
    if match is None:
        # Rebuilt only when the bytes cut from the body did not match: the JS rebuild is a
        # third of a delivery's verification CPU, and Kotani's compact bodies never need it.
        match = _first_match(
            keys, [("rebuilt", signed_bytes(envelope.event, envelope.data))], expected
        )
    if match is None:
        raise WebhookUnauthorized()
    return VerifiedWebhook(
        event=envelope.event, data=envelope.data, form=match[0], secret_index=match[1]
    )


def _first_match(
    keys: Sequence[bytes], candidates: Sequence[tuple[Form, bytes]], expected: bytes
) -> tuple[Form, int] | None:
    """(form, secret index) of the first candidate whose HMAC is ``expected``; every key is
    tried against every candidate (no early exit), each with ``hmac.compare_digest``."""
    match: tuple[Form, int] | None = None
    for index, key in enumerate(keys):
        for form, candidate in candidates:
            digest = hmac.new(key, candidate, hashlib.sha256).digest()
            if hmac.compare_digest(digest, expected) and match is None:
                match = (form, index)
    return match
