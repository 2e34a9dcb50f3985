"""Errors of the webhook ingress. Every malformed delivery fails as one of these.

ReceiverError
├── RequestError
│   └── InvalidJSON                   400 request.invalid_json (jsjson: not JSON, not UTF-8)
│       └── WebhookMalformed          400 webhook.malformed (JSON, but not a Kotani envelope)
└── Unauthorized
    └── WebhookUnauthorized           401 webhook.unauthorized (signature or token: bad,
                                      missing, malformed; the message never says which)
"""

from __future__ import annotations

from receiver.errors import InvalidJSON, Unauthorized


class WebhookMalformed(InvalidJSON):
    """The body is JSON but not a webhook: not an object, ``event``/``data`` missing or mistyped."""

    code = "webhook.malformed"


class WebhookUnauthorized(Unauthorized):
    """The delivery could not be authenticated. One message for every cause, by design."""

    code = "webhook.unauthorized"

    def __init__(self, message: str = "webhook signature missing or invalid") -> None:
        super().__init__(message)
