"""Settings: one ``Settings`` object read from ``RECEIVER_*`` environment variables and ``.env``.

Every setting is documented, with its default, in ``.env.example``. ``load_settings`` turns any
invalid value into one ``ConfigError`` line naming the variable (never a traceback, never the
value of a secret). Per-backend settings (``RECEIVER_LND_URL``...) belong to each backend's own
config class in ``receiver/lightning/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import (
    AnyHttpUrl,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from receiver.errors import ConfigError
from receiver.lightning.base import Network

ENV_PREFIX = "RECEIVER_"

KOTANI_HOSTS = {
    "sandbox": "https://sandbox-api.kotanipay.com",
    "production": "https://api.kotanipay.com",
}

# Kotani gives up on generate_invoice_url after 10 s; the whole mint path must finish before.
KOTANI_CALLBACK_TIMEOUT = 10.0


_ASYNC_DRIVERS = {
    "sqlite:": "sqlite+aiosqlite:",
    "postgresql:": "postgresql+asyncpg:",
    "postgres:": "postgresql+asyncpg:",
}


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """All of the service's settings. Tests build ``Settings(...)`` directly."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,
    )

    # --- serving -------------------------------------------------------------------------------
    env: str = Field("development", pattern="^(development|production)$")
    """``production`` refuses unsafe settings at start (receiver/production.py)."""
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    public_url: AnyHttpUrl | None = None
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Addresses/networks of the reverse proxies whose X-Forwarded-For / X-Request-ID count."""
    shutdown_grace: float = Field(20.0, gt=0, le=600)
    """Seconds SIGTERM waits for requests in flight and events in hand before cutting them."""
    metrics_token: SecretStr | None = None
    """When set, GET /metrics needs ``Authorization: Bearer <token>``."""
    log_level: str = "info"
    log_format: str = Field("console", pattern="^(console|json)$")

    # --- storage -------------------------------------------------------------------------------
    data_dir: Path = Path("var")
    database_url: str = ""
    """Empty means ``sqlite+aiosqlite:///<data_dir>/receiver.sqlite3``."""
    db_pool_size: int = Field(5, ge=1, le=200)
    """PostgreSQL connections kept open per process (each ``serve`` worker has its own pool)."""
    db_max_overflow: int = Field(10, ge=0, le=200)
    """Extra PostgreSQL connections opened under load beyond ``db_pool_size``, closed after."""
    db_pool_timeout: float = Field(30.0, gt=0, le=600)
    """Seconds a request waits for a free connection before it fails (a 503, retried)."""

    # --- invoices (generate_invoice_url) -------------------------------------------------------
    network: Network = Network.REGTEST
    backends: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["fake"])
    invoice_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    invoice_expiry: int = Field(3600, ge=60, le=31 * 24 * 3600)
    min_validity: int = Field(600, ge=0)
    deadline: float = Field(8.0, gt=0, lt=KOTANI_CALLBACK_TIMEOUT)
    max_amount_msat: int = Field(100_000_000_000, gt=0)
    invoice_description: str = Field("Kotani Pay refund {reference_id}", max_length=500)

    # --- circuit breaker (failover) ------------------------------------------------------------
    breaker_threshold: int = Field(3, ge=1)
    breaker_cooldown: float = Field(30.0, gt=0)

    # --- rate limits (receiver/ratelimit.py) --------------------------------------------------
    rate_limit_failures: str = "60/minute"
    """Refusals a client IP may cause in the window before it is answered 429 at once."""
    rate_limit_token: str = "6000/minute"  # noqa: S105 (a rate, not a secret)
    """generate_invoice_url calls per configured token."""

    # --- Kotani webhooks -----------------------------------------------------------------------
    webhook_secrets: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    allow_unsigned: bool = False
    direct_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """URL secrets of direct mode (/webhooks/kotani/<token>); empty: direct mode is off."""
    allow_direct_with_secrets: bool = False
    """Keep direct mode open while RECEIVER_WEBHOOK_SECRETS is set (off: refused then)."""
    worker_max_attempts: int = Field(10, ge=1)
    worker_lease: float = Field(30.0, ge=1, le=3600)
    """Seconds a worker holds an event; after a crash the event is handled again this late."""
    worker_concurrency: int = Field(16, ge=1, le=64)
    auto_retry_refund: bool = False
    max_refund_retries: int = Field(1, ge=0)
    forward_url: AnyHttpUrl | None = None
    forward_secret: SecretStr | None = None
    api_key: SecretStr | None = None

    # --- Kotani API ----------------------------------------------------------------------------
    kotani_base_url: str = "sandbox"
    kotani_api_key: SecretStr | None = None
    kotani_timeout: float = Field(15.0, gt=0)
    bridge_keeper: bool = False
    bridge_poll_interval: float = Field(30.0, gt=0)

    # --- operator console and alerts (receiver/console/) --------------------------------------
    console_session_hours: float = Field(8.0, gt=0, le=24 * 30)
    """How long a console login lasts (the session cookie is signed with a key derived from
    RECEIVER_API_KEY: it works on every replica, and changing the key logs everyone out)."""
    alert_urls: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """Apprise URLs (comma-separated) that get one message per incident and one on resolve."""
    alert_after: float = Field(15.0, gt=0)
    """Minutes an ``invoice_needed`` may stay unsubmitted before it is an incident."""
    alert_interval: float = Field(30.0, gt=0)
    """Seconds between two checks for incidents."""

    @field_validator("backends", mode="before")
    @classmethod
    def _backends_csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxies_csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_valid(cls, value: list[str]) -> list[str]:
        import ipaddress

        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise ValueError(f"not an IP address or network: {entry!r}") from exc
        return value

    @field_validator(
        "invoice_tokens", "webhook_secrets", "alert_urls", "direct_tokens", mode="before"
    )
    @classmethod
    def _secrets_csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("backends")
    @classmethod
    def _backends_nonempty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one backend, e.g. fake")
        if len(set(value)) != len(value):
            raise ValueError("a backend is listed twice")
        return [name.lower() for name in value]

    @field_validator("invoice_tokens", "direct_tokens")
    @classmethod
    def _tokens_strong(cls, value: list[SecretStr]) -> list[SecretStr]:
        for token in value:
            secret = token.get_secret_value()
            if len(secret) < 16 or not all(c.isalnum() or c in "-_" for c in secret):
                raise ValueError(
                    "each token needs at least 16 characters of [A-Za-z0-9_-] "
                    "(`kotani-receiver token new` makes one)"
                )
        return value

    @field_validator("kotani_base_url")
    @classmethod
    def _kotani_host(cls, value: str) -> str:
        value = KOTANI_HOSTS.get(value.strip().lower(), value.strip()).rstrip("/")
        if not value.startswith(("https://", "http://")):
            raise ValueError("use sandbox, production or an http(s) URL")
        return value

    @field_validator("forward_secret")
    @classmethod
    def _forward_secret(cls, value: SecretStr | None) -> SecretStr | None:
        """Checked at start, not at the first forward (a whsec_ secret of >= 16 bytes)."""
        from receiver.errors import ConfigError
        from receiver.webhooks.standard import decode_secret

        if value is not None:
            try:
                decode_secret(value)
            except ConfigError as exc:
                raise ValueError(str(exc).removeprefix("RECEIVER_FORWARD_SECRET: ")) from None
        return value

    @field_validator("rate_limit_failures", "rate_limit_token")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        from receiver.ratelimit import parse_limit

        try:
            parse_limit(value)
        except ValueError as exc:
            raise ValueError("use a rate such as 30/minute or 10/second") from exc
        return value

    @field_validator("invoice_description")
    @classmethod
    def _description_template(cls, value: str) -> str:
        try:
            value.format(reference_id="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError("only the placeholder {reference_id} is allowed") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        for plain, driver in _ASYNC_DRIVERS.items():
            if value.startswith(plain):
                value = driver + value[len(plain) :]
                break
        if not value.startswith(tuple(_ASYNC_DRIVERS.values())):
            raise ValueError(
                "use sqlite+aiosqlite:///path or postgresql+asyncpg://user:pass@host/db"
            )
        try:
            make_url(value)
        except ArgumentError as exc:
            raise ValueError("not a database URL") from exc
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        invoice = {t.get_secret_value() for t in self.invoice_tokens}
        if any(t.get_secret_value() in invoice for t in self.direct_tokens):
            raise ValueError(
                "RECEIVER_DIRECT_TOKENS must differ from RECEIVER_INVOICE_TOKENS (the invoice "
                "token travels in every refund_config)"
            )
        if self.min_validity >= self.invoice_expiry:
            raise ValueError("RECEIVER_MIN_VALIDITY must be shorter than RECEIVER_INVOICE_EXPIRY")
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir / 'receiver.sqlite3'}"
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def secret_values(self) -> list[str]:
        """The plain text of every secret setting, for the log redactor."""
        found: list[str] = []
        for _name, value in self:
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, SecretStr):
                    found.append(item.get_secret_value())
        return found

    @property
    def pool_options(self) -> dict[str, Any]:
        """``Database(settings.database_url, **settings.pool_options)``."""
        return {
            "pool_size": self.db_pool_size,
            "max_overflow": self.db_max_overflow,
            "pool_timeout": self.db_pool_timeout,
        }


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment and ``.env``; any invalid value is one ConfigError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """One line per bad variable, naming it as the user typed it (values are never shown)."""
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = error.get("loc") or ()
        name = f"{ENV_PREFIX}{str(loc[0]).upper()}" if loc else "settings"
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        lines.append(f"{name}: {message}")
    return "; ".join(lines)
