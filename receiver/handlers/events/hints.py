"""Deliveries nobody signed are hints: confirmed with Kotani's API before any effect.

A delivery without a valid signature (direct mode, ``ALLOW_UNSIGNED``) may come from whoever
knows a URL token, so it never acts by itself. With a Kotani API key configured, a refund hint
(``refund.completed``, ``refund.failed``) makes the worker ask Kotani's
``GET /api/v3/offramp/refund-status/{referenceId}`` and act on *that* answer as the signed handler
would: a SUCCESSFUL refund is recorded completed (and the payment checked at our node), a FAILED
one failed (with the retry policy). The hint's own fields are never used.

Everything else is recorded for an operator with no effect: no API key; Kotani's answer says
neither; an ``invoice_needed`` (minting needs the amount Kotani signed, and refund-status's
amount has no documented unit); a status update (Kotani's signed events or the bridge keeper
move statuses). One reference is asked about at most once per ``HINT_INTERVAL`` seconds, so a
flood of hints cannot turn into a flood of calls to Kotani.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace

from sqlalchemy.orm import Session

from receiver.handlers.events import refund_completed, refund_failed
from receiver.handlers.events.base import (
    EventContext,
    EventFailed,
    Handled,
    Handler,
    InboxEvent,
    PermanentFailure,
)
from receiver.inbox.worker import UNVERIFIED_OUTCOME
from receiver.kotani.errors import KotaniError, KotaniNotFound, KotaniUnauthorized
from receiver.kotani.models import RefundStatus
from receiver.webhooks import jsjson

HINT_INTERVAL = 60.0
"""Seconds between two refund-status calls for one reference prompted by hints."""
CONFIRMABLE = ("refund.completed", "refund.failed")
_COMPLETED = {"SUCCESSFUL", "SUCCESS", "COMPLETED", "REVERSED", "REFUNDED"}
_FAILED = {"FAILED", "REFUND_FAILED"}


@dataclass
class HintGate:
    """When each reference was last confirmed with Kotani (bounded; this process only)."""

    interval: float = HINT_INTERVAL
    size: int = 10_000
    _asked: OrderedDict[str, float] = field(default_factory=OrderedDict)

    def admit(self, reference_id: str) -> bool:
        now = time.monotonic()
        last = self._asked.get(reference_id)
        if last is not None and now - last < self.interval:
            return False
        self._asked.pop(reference_id, None)
        self._asked[reference_id] = now
        while len(self._asked) > self.size:
            self._asked.popitem(last=False)
        return True


def verdict(status: RefundStatus) -> str | None:
    """``refund.completed``/``refund.failed`` when Kotani's answer says so, else None.

    ``refundStatus`` decides when present (the refund webhooks' field); ``status`` otherwise
    (the offramp's REVERSED/REFUNDED and REFUND_FAILED). Every documented spelling counts.
    """
    for value in (status.refund_status, status.status):
        word = (value or "").strip().upper()
        if word in _COMPLETED:
            return "refund.completed"
        if word in _FAILED:
            return "refund.failed"
        if word:
            return None
    return None


async def confirm(ctx: EventContext, event: InboxEvent, gate: HintGate) -> Handled:
    """Handle an unsigned delivery: Kotani's own answer acts, the hint never does."""
    reference_id = event.reference_id
    if event.event_type not in CONFIRMABLE or reference_id is None or ctx.kotani is None:
        return Handled(UNVERIFIED_OUTCOME)
    refund = await ctx.refunds.get(reference_id)
    if refund is not None and refund.completed_at is not None:
        return Handled(f"{UNVERIFIED_OUTCOME}; the refund is already completed")
    if not gate.admit(reference_id):
        return Handled(f"{UNVERIFIED_OUTCOME}; Kotani was asked about it less than a minute ago")
    try:
        status = await ctx.kotani.refund_status(reference_id)
    except KotaniNotFound:
        return Handled(f"{UNVERIFIED_OUTCOME}; Kotani does not know this reference")
    except KotaniUnauthorized as exc:
        raise PermanentFailure(
            "Kotani refused our API key (401) confirming a hint: check RECEIVER_KOTANI_API_KEY"
        ) from exc
    except KotaniError as exc:
        raise EventFailed(f"refund-status failed while confirming a hint: {exc.code}") from exc
    said = verdict(status)
    if said is None:
        shown = status.refund_status or status.status or "no status"
        return Handled(f"{UNVERIFIED_OUTCOME}; Kotani's refund-status says {shown[:40]}")
    data = jsjson.loads(
        json.dumps(status.model_dump(mode="json", by_alias=True, exclude_none=True)).encode()
    )
    if not isinstance(data, dict):  # pragma: no cover - a model always dumps an object
        raise PermanentFailure("refund-status did not give an object")
    data["referenceId"] = reference_id
    confirmed = replace(event, event_type=said, data=data)
    handler = refund_completed.handle if said == "refund.completed" else refund_failed.handle
    result = await handler(ctx, confirmed)
    prefix = "unsigned hint confirmed by Kotani's refund-status: "
    effects = result.apply
    if effects is None:
        return replace(result, outcome=prefix + result.outcome)

    def apply(session: Session) -> str:
        return prefix + (effects(session) or result.outcome)

    return Handled(prefix + result.outcome, apply)


def hint_handler(gate: HintGate | None = None) -> Handler:
    """The worker's handler for unsigned deliveries, with its own ``HintGate``."""
    own = gate if gate is not None else HintGate()

    async def handle(ctx: EventContext, event: InboxEvent) -> Handled:
        return await confirm(ctx, event, own)

    return handle
