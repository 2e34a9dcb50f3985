"""CLI: ``events list|show|replay`` and ``refunds show``, straight on the database.

Registered in ``receiver.cli.EXTENSIONS``. A replayed event is picked up by the running
service's worker within its poll interval (about a second).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from receiver.db import Database
from receiver.inbox import queries
from receiver.inbox.models import EventStatus
from receiver.inbox.store import Inbox
from receiver.settings import Settings


def _with_db(work: Callable[[Database], Awaitable[int]], settings: Settings) -> int:
    async def run() -> int:
        db = Database(settings.database_url)
        try:
            await db.upgrade()
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(run())


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _events_list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database) -> int:
        events = await queries.list_events(
            db,
            status=EventStatus(args.status) if args.status else None,
            event_type=args.type,
            reference_id=args.reference,
            limit=args.limit,
        )
        if args.json:
            _print(events)
            return 0
        for e in events:
            note = (
                e["last_error"]
                if e["status"] in ("dead", "pending") and e["last_error"]
                else (e["outcome"] or "")
            )
            print(
                f"{e['id']:>7}  {e['status']:<10} {e['attempts']:>2}x  {e['received_at'][:19]}  "
                f"{e['type']:<36} {e['reference_id'] or '-':<20} {note[:60]}"
            )
        return 0

    return _with_db(work, settings)


def _events_show(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database) -> int:
        _print(await queries.get_event(db, args.id))
        return 0

    return _with_db(work, settings)


def _events_replay(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database) -> int:
        await Inbox(db, owner="cli").replay(args.id)
        print(f"event {args.id} is pending again; the running service will handle it")
        return 0

    return _with_db(work, settings)


def _refunds_show(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database) -> int:
        view = await queries.refund_view(db, args.reference)
        if args.json:
            _print(view)
            return 0
        refund = view["refund"]
        print(f"reference   {view['reference_id']}")
        if refund is not None:
            for name in (
                "state",
                "amount_msat",
                "payment",
                "submissions",
                "retry_requests",
                "error",
                "bolt11",
            ):
                if refund.get(name) is not None:
                    print(f"{name:<11} {refund[name]}")
        if view["transaction_status"] is not None:
            status = view["transaction_status"]
            print(f"status      {status['status']} (at {status['status_at'] or 'unknown'})")
        for step in view["history"]:
            print(f"  {step['at'][:19]}  {step['action']:<24} {step['detail']}")
        print(f"events      {', '.join(str(e['id']) for e in view['events']) or '-'}")
        return 0

    return _with_db(work, settings)


def register(sub: Any) -> None:
    """Add ``events`` and ``refunds`` to the root parser's subcommands."""
    p = sub.add_parser("events", help="webhook deliveries stored by the service")
    events = p.add_subparsers(dest="events_command", required=True, metavar="ACTION")
    e = events.add_parser("list", help="newest first")
    e.add_argument("--status", choices=[s.value for s in EventStatus])
    e.add_argument("--type", help="event type, e.g. refund.completed")
    e.add_argument("--reference", help="Kotani reference id")
    e.add_argument("--limit", type=int, default=50)
    e.add_argument("--json", action="store_true", help="machine-readable output")
    e.set_defaults(func=_events_list)
    e = events.add_parser("show", help="one event with its body and headers")
    e.add_argument("id", type=int, metavar="ID")
    e.set_defaults(func=_events_show)
    e = events.add_parser("replay", help="handle a stored event again")
    e.add_argument("id", type=int, metavar="ID")
    e.set_defaults(func=_events_replay)

    p = sub.add_parser("refunds", help="refund records")
    refunds = p.add_subparsers(dest="refunds_command", required=True, metavar="ACTION")
    r = refunds.add_parser("show", help="state, invoice, history and events of a reference")
    r.add_argument("reference", metavar="REFERENCE_ID")
    r.add_argument("--json", action="store_true", help="machine-readable output")
    r.set_defaults(func=_refunds_show)
