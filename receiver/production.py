"""``RECEIVER_ENV=production``: the settings a service in front of real money must not start with.

``problems(settings)`` lists each unsafe setting as one line naming the variable (never its
value); ``serve`` prints them and exits 2 before anything listens. In development every one of
these is allowed, so the quick start and the tests run on the embedded defaults.

What is refused, and why:
- the ``fake`` backend: its invoices are signed by a throwaway key nobody can pay out from;
- a test network (testnet, signet, regtest) while Kotani is its production API: Kotani refunds
  real bitcoin only to ``lnbc`` invoices;
- an ``http://`` public URL: Kotani would send the invoice token and webhooks in clear text;
- credentials sent over ``http://`` to a host that is not this machine (Kotani's API; the
  backends' URLs are checked by ``backend_problems``);
- ``RECEIVER_ALLOW_UNSIGNED`` beside signing secrets: anyone could post unsigned events;
- a missing or short secret: invoice tokens under 32 characters (or none: the generated token
  lives on one disk, not in the deployment's secret store), webhook secrets under 16, an API
  key under 32.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from receiver.lightning.base import Network
from receiver.settings import KOTANI_HOSTS, Settings

MIN_TOKEN = 32
MIN_WEBHOOK_SECRET = 16
MIN_API_KEY = 32


def is_loopback_url(url: str) -> bool:
    """True when ``url``'s host is this machine (``localhost`` or a loopback address)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cleartext_credentials(url: str) -> bool:
    """True when credentials sent to ``url`` would cross a network unencrypted."""
    return url.lower().startswith("http://") and not is_loopback_url(url)


def problems(settings: Settings) -> list[str]:
    """One line per unsafe setting; empty outside production."""
    if settings.env != "production":
        return []
    found: list[str] = []
    if "fake" in settings.backends:
        found.append("RECEIVER_BACKENDS: the fake backend cannot be used in production")
    if settings.kotani_base_url == KOTANI_HOSTS["production"] and (
        settings.network is not Network.BITCOIN
    ):
        found.append(
            f"RECEIVER_NETWORK: {settings.network.value} while RECEIVER_KOTANI_BASE_URL is "
            "Kotani's production API (use bitcoin)"
        )
    if settings.public_url is None:
        found.append("RECEIVER_PUBLIC_URL: set the https URL Kotani reaches")
    elif str(settings.public_url).lower().startswith("http://"):
        found.append("RECEIVER_PUBLIC_URL: must be https:// in production")
    if settings.kotani_api_key is not None and cleartext_credentials(settings.kotani_base_url):
        found.append("RECEIVER_KOTANI_BASE_URL: the API key would be sent over http://")
    if settings.allow_unsigned and settings.webhook_secrets:
        found.append(
            "RECEIVER_ALLOW_UNSIGNED: refused beside RECEIVER_WEBHOOK_SECRETS "
            "(anyone could post unsigned events)"
        )
    tokens = [t.get_secret_value() for t in settings.invoice_tokens]
    if not tokens:
        found.append(
            "RECEIVER_INVOICE_TOKENS: set it in production (`kotani-receiver token new`)"
        )
    elif any(len(t) < MIN_TOKEN for t in tokens):
        found.append(f"RECEIVER_INVOICE_TOKENS: each token needs {MIN_TOKEN}+ characters")
    if any(len(s.get_secret_value()) < MIN_WEBHOOK_SECRET for s in settings.webhook_secrets):
        found.append(
            f"RECEIVER_WEBHOOK_SECRETS: each secret needs {MIN_WEBHOOK_SECRET}+ characters"
        )
    if any(len(t.get_secret_value()) < MIN_TOKEN for t in settings.direct_tokens):
        found.append(f"RECEIVER_DIRECT_TOKENS: each token needs {MIN_TOKEN}+ characters")
    if settings.api_key is not None and len(settings.api_key.get_secret_value()) < MIN_API_KEY:
        found.append(f"RECEIVER_API_KEY: needs {MIN_API_KEY}+ characters")
    return found


def backend_problems(settings: Settings, urls: Iterable[tuple[str, str]]) -> list[str]:
    """Lines for backends whose credentials would travel over http:// off this machine.

    ``urls`` are ``(variable, url)`` pairs of the configured backends, e.g.
    ``("RECEIVER_LND_URL", "http://10.0.0.5:8080")``.
    """
    if settings.env != "production":
        return []
    return [
        f"{variable}: credentials would be sent over http:// to another host (use https)"
        for variable, url in urls
        if cleartext_credentials(url)
    ]
