"""schemathesis hooks (``SCHEMATHESIS_HOOKS=tests.fuzz.hooks``): the credentials of every route.

One provider for all operations (schemathesis uses a registered provider instead of its
``[auth.openapi]`` settings, not beside them), picked by the operation's declared security:

- ``apiKey`` / ``apiKeyHeader``: ``Authorization: Bearer $FUZZ_API_KEY``;
- ``metricsToken``: ``Authorization: Bearer $FUZZ_METRICS_TOKEN``;
- ``consoleSession``: the ``kr_console`` cookie ``$FUZZ_CONSOLE_COOKIE``;
- ``webhookSignature``: an HMAC of the body, which no static header can be: each generated
  envelope is signed with ``$FUZZ_WEBHOOK_SECRET`` exactly as Kotani would
  (``JSON.stringify({event, data})``), so the fuzz reaches the inbox instead of stopping at 401.

schemathesis still strips them to check that a request without them is refused (``ignored_auth``).
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis

from receiver.errors import InvalidJSON
from receiver.webhooks import jsjson
from receiver.webhooks.signature import sign, signed_bytes


def _schemes(case: Any) -> set[str]:
    requirements = case.operation.definition.raw.get("security") or []
    return {name for requirement in requirements for name in requirement}


def _signature(body: Any, secret: str) -> str | None:
    if not isinstance(body, dict):
        return None
    try:
        parsed = jsjson.loads(json.dumps(body).encode())
    except (InvalidJSON, ValueError, TypeError):
        return None
    if not isinstance(parsed, dict):
        return None
    event, data = parsed.get("event"), parsed.get("data")
    if not isinstance(event, str) or not isinstance(data, dict):
        return None
    return sign(secret, signed_bytes(event, data))


@schemathesis.auth(refresh_interval=None)
class Credentials:
    def get(self, case: Any, context: Any) -> dict[str, str]:
        return {
            name: os.environ[f"FUZZ_{name.upper()}"]
            for name in ("api_key", "metrics_token", "console_cookie", "webhook_secret")
        }

    def set(self, case: Any, data: dict[str, str], context: Any) -> None:
        schemes = _schemes(case)
        headers = dict(case.headers or {})
        if "apiKey" in schemes:
            headers["Authorization"] = f"Bearer {data['api_key']}"
        elif "metricsToken" in schemes:
            headers["Authorization"] = f"Bearer {data['metrics_token']}"
        elif "webhookSignature" in schemes:
            signature = _signature(case.body, data["webhook_secret"])
            if signature is not None:
                headers["X-Kotani-Signature"] = signature
        elif "consoleSession" in schemes:
            case.cookies = {**(case.cookies or {}), "kr_console": data["console_cookie"]}
        case.headers = headers
