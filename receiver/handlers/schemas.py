"""The JSON bodies the HTTP API answers with, as pydantic models: one source for the handlers
(which serialise their answers through them) and for the OpenAPI document (``spec``), whose
components are these models' ``model_json_schema``.

Response models forbid extra fields, so an answer that grows a field without its model fails in
the tests instead of drifting from the document. Request bodies the handlers validate by hand
(``invoice_url``) are described in ``spec`` from the same constants the validators use.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
"""An RFC 3339 UTC timestamp as the store writes it (``2026-01-02T03:04:05.000000Z``)."""
Hash = Annotated[str, Field(pattern="^[0-9a-f]{64}$")]


class Answer(BaseModel):
    """A response body: exactly these fields."""

    model_config = ConfigDict(extra="forbid")

    def answer(self) -> dict[str, Any]:
        """The JSON object: the fields that were set (a key absent from the source stays
        absent; the schema marks such fields optional)."""
        return self.model_dump(mode="json", exclude_unset=True)


class Attempt(Answer):
    """One backend's failed attempt inside a mint (``mint.unavailable``)."""

    backend: str
    code: str


class ErrorDetail(Answer):
    code: str = Field(description="Stable machine code, e.g. `request.validation`.")
    message: str = Field(description="For people; never contains a secret.")
    attempts: list[Attempt] | None = Field(
        None, description="Only on `mint.unavailable`: one entry per backend tried."
    )


class ErrorBody(Answer):
    """Every error the JSON API answers: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail


class InvoiceAnswer(Answer):
    """The generate_invoice_url answer: a verified, unpaid invoice for exactly the amount."""

    bolt11: str
    payment_hash: Hash
    amount_msat: int = Field(ge=1, description="Equal to the request's.")
    expires_at: Annotated[
        str,
        Field(
            pattern="^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$",
            json_schema_extra={"format": "date-time"},
            description="RFC 3339, UTC, whole seconds.",
        ),
    ]


class Health(Answer):
    status: Literal["ok"]


class DatabaseProbe(Answer):
    ok: bool


class BackendProbe(Answer):
    """One backend's probe: ``node_id``/``network`` when it answered, ``error`` when not."""

    name: str
    ok: bool
    node_id: str | None = None
    network: str | None = None
    error: str | None = None


class Readiness(Answer):
    status: Literal["ready", "unavailable"]
    database: DatabaseProbe
    backends: list[BackendProbe]


class WebhookAccepted(Answer):
    """The delivery is stored (committed) and will be handled by the worker."""

    ok: Literal[True]
    event_id: int
    duplicate: bool = Field(description="True when this content was received before.")


EventStatusName = Literal["pending", "processing", "done", "dead"]
VerificationName = Literal["signature", "token", "unsigned"]


class EventSummary(Answer):
    id: int
    type: str
    status: EventStatusName
    reference_id: str | None
    verification: VerificationName
    verification_detail: str
    attempts: int
    duplicates: int
    next_attempt_at: Timestamp | None
    outcome: str | None
    last_error: str | None
    received_at: Timestamp | None
    processed_at: Timestamp | None


class EventPage(Answer):
    events: list[EventSummary]
    next_before: int | None = Field(description="Pass as `before` for the next page.")


class Forwarding(Answer):
    message_id: str
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    delivered_at: Timestamp | None


class EventDetail(EventSummary):
    dedup_key: str
    headers: dict[str, str] = Field(description="As received, credentials removed.")
    body: Any = Field(description="The stored body (parsed JSON, or its text).")
    forward: Forwarding | None = None


class ReplayAccepted(Answer):
    event_id: int
    status: Literal["pending"]


class RefundRecord(Answer):
    state: str
    amount_msat: int | None
    amount_sats: int | None
    refund_amount: str | None
    chain: str | None
    token: str | None
    currency: str | None
    bolt11: str | None
    payment_hash: str | None
    payment: str | None
    submissions: int
    retry_requests: int
    total_retries: int | None
    error: str | None
    transaction_hash: str | None
    created_at: Timestamp | None
    updated_at: Timestamp | None
    completed_at: Timestamp | None


class HistoryStep(Answer):
    at: Timestamp | None
    action: str
    detail: str
    event_id: int | None


class TransactionStatusView(Answer):
    status: str
    event_type: str
    status_at: Timestamp | None
    event_id: int


class MintedInvoice(Answer):
    payment_hash: str
    amount_msat: int
    status: Literal["pending", "paid", "expired"]
    backend: str
    created_at: Timestamp | None
    expires_at: Timestamp | None


class RefundView(Answer):
    """Everything known about one reference: refund record, history, status, invoices, events."""

    reference_id: str
    refund: RefundRecord | None
    history: list[HistoryStep]
    transaction_status: TransactionStatusView | None
    invoices: list[MintedInvoice]
    events: list[EventSummary]


ANSWERS: tuple[type[BaseModel], ...] = (
    ErrorBody,
    InvoiceAnswer,
    Health,
    Readiness,
    WebhookAccepted,
    EventPage,
    EventDetail,
    ReplayAccepted,
    RefundView,
)
"""Every model the document's components are generated from (with the models they use)."""
