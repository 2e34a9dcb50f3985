"""Where the receiver under test is and what ``simulate`` needs to speak to it.

Everything comes from the same settings as the receiver's own (run ``simulate`` with its
environment or ``.env``): the invoice token (``RECEIVER_INVOICE_TOKENS`` or the generated file),
the webhook secret (the first of ``RECEIVER_WEBHOOK_SECRETS``), the internal API key
(``RECEIVER_API_KEY``). ``--url`` points at another base URL, e.g. a tunnel's.
"""

from __future__ import annotations

from dataclasses import dataclass

from receiver.errors import ConfigError
from receiver.settings import Settings
from receiver.tokens import resolve_tokens


@dataclass(frozen=True)
class Target:
    base_url: str
    token: str | None
    webhook_secret: str | None
    api_key: str | None

    @property
    def invoice_url(self) -> str:
        if self.token is None:
            raise ConfigError(
                "no invoice token: run `kotani-receiver serve` once or set RECEIVER_INVOICE_TOKENS"
            )
        return f"{self.base_url}/invoices/{self.token}"

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/webhooks/kotani"

    def api_headers(self) -> dict[str, str]:
        if not self.api_key:
            raise ConfigError("RECEIVER_API_KEY is not set: simulate reads the refund through it")
        return {"Authorization": f"Bearer {self.api_key}"}


def target_of(settings: Settings, url: str | None) -> Target:
    from receiver.cli import local_base_url

    tokens, _ = resolve_tokens(settings, create=False)
    return Target(
        base_url=(url or local_base_url(settings)).rstrip("/"),
        token=tokens[0].get_secret_value() if tokens else None,
        webhook_secret=(
            settings.webhook_secrets[0].get_secret_value() if settings.webhook_secrets else None
        ),
        api_key=settings.api_key.get_secret_value() if settings.api_key is not None else None,
    )
