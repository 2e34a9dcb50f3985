"""Reconciliation export: ``kotani-receiver refunds export`` and the console's download.

One row per refund: reference, amounts, state, payment hash, created/submitted/paid/completed
times, Kotani's reported status and ``mismatch``: ``kotani_paid_node_unpaid`` when Kotani says
the refund went out (``refund.completed``, REVERSED) but our node never saw the invoice paid,
``node_paid_kotani_open`` for the reverse, empty when both agree.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import sys
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from receiver.console.auth import Session
from receiver.console.data import REFUND_STATES, ConsoleData, StoreData
from receiver.console.web import HEADERS, guarded, parse_since, refuse
from receiver.db import Database
from receiver.settings import Settings

COLUMNS = (
    "reference_id",
    "state",
    "amount_msat",
    "amount_sats",
    "refund_amount",
    "payment_hash",
    "created_at",
    "submitted_at",
    "paid_at",
    "completed_at",
    "kotani_status",
    "node_payment",
    "mismatch",
)
FORMATS = ("csv", "json")


def render_rows(rows: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        # A leading = + - @ would be a formula in a spreadsheet: references come from Kotani.
        writer.writerow(
            {
                k: f"'{v}" if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") else v
                for k, v in row.items()
            }
        )
    return out.getvalue()


async def _download(request: Request, session: Session, data: ConsoleData) -> Response:
    params = request.query_params
    fmt = params.get("format", "csv")
    state = params.get("state", "")
    if fmt not in FORMATS or (state and state not in REFUND_STATES):
        return refuse(request, "format must be csv or json; state one of the refund states", 400)
    since = parse_since(params.get("since", ""))
    body = render_rows(await data.export_refunds(since, state), fmt)
    media = "text/csv" if fmt == "csv" else "application/json"
    return Response(
        body,
        media_type=media,
        headers={**HEADERS, "Content-Disposition": f'attachment; filename="refunds.{fmt}"'},
    )


download = guarded(_download)


def _export(args: argparse.Namespace, settings: Settings) -> int:
    try:
        since = parse_since(args.since or "")
    except ValueError:
        print("kotani-receiver: --since must be a date (YYYY-MM-DD)", file=sys.stderr)
        return 2

    async def run() -> str:
        db = Database(settings.database_url)
        try:
            await db.upgrade()
            rows = await StoreData(db).export_refunds(since, args.state or "")
        finally:
            await db.dispose()
        return render_rows(rows, args.format)

    sys.stdout.write(asyncio.run(run()))
    return 0


def register(sub: Any) -> None:
    """Adds ``refunds export`` to the ``refunds`` group (created here if no module made it)."""
    refunds = sub.choices.get("refunds") or sub.add_parser("refunds", help="refund records")
    actions = next(
        (a for a in refunds._actions if isinstance(a, argparse._SubParsersAction)), None
    ) or refunds.add_subparsers(dest="refunds_command", required=True, metavar="ACTION")
    e = actions.add_parser("export", help="reconciliation rows (CSV or JSON) with mismatches")
    e.add_argument("--since", help="refunds created on or after this date (YYYY-MM-DD)")
    e.add_argument("--state", choices=REFUND_STATES)
    e.add_argument("--format", choices=FORMATS, default="csv")
    e.set_defaults(func=_export)
