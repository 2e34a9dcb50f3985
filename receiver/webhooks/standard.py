"""Standard Webhooks signing, for the events forwarded to the integrator's own app.

Spec: https://www.standardwebhooks.com/ (and standard-webhooks ``libraries/python``): headers
``webhook-id``, ``webhook-timestamp`` (Unix seconds) and ``webhook-signature: v1,<base64>`` where
the signature is HMAC-SHA256 over ``{id}.{timestamp}.{body}`` keyed with the secret's bytes: the
base64 text after the ``whsec_`` prefix. Any Standard Webhooks library verifies these messages.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from pydantic import SecretStr

from receiver.errors import ConfigError

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)


def decode_secret(secret: SecretStr) -> bytes:
    """The key bytes of a ``whsec_<base64>`` secret; ``ConfigError`` when it is not one."""
    text = secret.get_secret_value().strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            "RECEIVER_FORWARD_SECRET: use a Standard Webhooks secret, whsec_ followed by base64 "
            "(e.g. whsec_ + `openssl rand -base64 32`)"
        ) from None
    if len(key) < 16:
        raise ConfigError("RECEIVER_FORWARD_SECRET: the secret must hold at least 16 bytes")
    return key


def signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` over ``{id}.{timestamp}.{body}``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(key: bytes, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one delivery attempt."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, message_id, timestamp, body),
        "content-type": "application/json",
    }
