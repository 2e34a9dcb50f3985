"""Reading request bodies: size limit while streaming, JSON media type, JSON object.

Every malformed body becomes a ``RequestError`` (400/413/415), never an exception of the parser.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request

from receiver.errors import InvalidJSON, PayloadTooLarge, RequestTimeout, UnsupportedMediaType

BODY_TIMEOUT = 10.0
"""Seconds a request body may take to arrive, first byte to last."""


def _is_json_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in ("", "application/json", "text/json") or media.endswith("+json")


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing anything over ``limit`` bytes (413) before reading it all, and a
    body that takes longer than ``BODY_TIMEOUT`` seconds to arrive (408: a stalled client must
    not hold a connection slot)."""
    timeout = BODY_TIMEOUT
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"the body is larger than {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout(f"the body did not arrive within {timeout:g} s") from None
    return b"".join(chunks)


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Parse a JSON object; anything else is ``InvalidJSON``."""
    if not body.strip():
        raise InvalidJSON("the body is empty; send a JSON object")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:  # includes UnicodeDecodeError and digit limits
        raise InvalidJSON("the body is not valid JSON") from exc
    if not isinstance(document, dict):
        raise InvalidJSON("the body must be a JSON object")
    return document


async def read_json_object(request: Request, limit: int) -> tuple[bytes, dict[str, Any]]:
    """Bounded read, then parse: the raw bytes and the object.

    A JSON body is accepted whatever Content-Type it came with (a caller's mislabelled request
    must not cost a refund); a body that is not JSON is 415 when its Content-Type says it is not
    JSON either, and 400 otherwise.
    """
    body = await read_body(request, limit)
    try:
        return body, parse_json_object(body)
    except InvalidJSON:
        if not _is_json_type(request.headers.get("content-type", "")):
            raise UnsupportedMediaType("send the body as application/json") from None
        raise
