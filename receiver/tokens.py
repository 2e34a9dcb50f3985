"""The secret tokens that make up generate_invoice_url (``/invoices/<token>``).

Kotani does not sign its calls to generate_invoice_url, so the URL itself carries the secret.
Tokens come from ``RECEIVER_INVOICE_TOKENS`` (several: rotation); when none is set, ``serve``
creates one on first start and keeps it beside the database with mode 0600. A token is compared
in constant time against every configured one and is never echoed or logged.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy.engine import make_url

from receiver.files import private_dir
from receiver.settings import Settings

TOKEN_FILE = "invoice-token"  # noqa: S105 (a file name, not a secret)


def new_token() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def mask(token: str) -> str:
    """Enough of a token to tell which one it is, not enough to use it."""
    return f"{token[:4]}…" if len(token) > 8 else "…"


class TokenSet:
    """Constant-time membership test over the configured tokens."""

    def __init__(self, tokens: Sequence[SecretStr]) -> None:
        self._tokens = [t.get_secret_value().encode() for t in tokens]

    def __repr__(self) -> str:
        return f"TokenSet({len(self._tokens)} tokens)"

    def __len__(self) -> int:
        return len(self._tokens)

    def plain(self) -> list[str]:
        """The tokens' text, for the log redactor only."""
        return [t.decode() for t in self._tokens]

    def matches(self, candidate: str) -> bool:
        """True when ``candidate`` equals a configured token; every token is compared."""
        given = candidate.encode("utf-8", "surrogateescape")
        found = False
        for token in self._tokens:
            found |= hmac.compare_digest(token, given)
        return found


def token_path(settings: Settings) -> Path:
    """Where the generated token lives: beside the SQLite file, else in the data dir."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(str(url.database)).parent / TOKEN_FILE
    return settings.data_dir / TOKEN_FILE


def resolve_tokens(settings: Settings, *, create: bool) -> tuple[list[SecretStr], str | None]:
    """The tokens to serve, and the token text if this call just created it (else None)."""
    if settings.invoice_tokens:
        return list(settings.invoice_tokens), None
    path = token_path(settings)
    try:
        stored = path.read_text().strip()
    except FileNotFoundError:
        stored = ""
    if stored:
        return [SecretStr(stored)], None
    if not create:
        return [], None
    token = new_token()
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its token
        return [SecretStr(path.read_text().strip())], None
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return [SecretStr(token)], token
