"""The imitation's HTTP conventions: Kotani's envelope, its error bodies, the Bearer check.

Every answer is ``{"success", "message", "data"}``; a ``Refusal`` becomes Kotani's status and
message, a pydantic ``ValidationError`` a 400 naming the fields, a missing or wrong key a 401.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from receiver.mock_kotani.rules import Refusal

if TYPE_CHECKING:
    from receiver.mock_kotani.app import MockKotani

Handler = Callable[[Request], Awaitable[Any]]


def ok(data: Any, message: str = "Success", status: int = 200) -> JSONResponse:
    return JSONResponse({"success": True, "message": message, "data": data}, status_code=status)


def refused(status: int, message: str) -> JSONResponse:
    return JSONResponse({"success": False, "message": message, "data": {}}, status_code=status)


def _authorized(mock: MockKotani, request: Request) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return False
    if mock.api_key is None:
        return True
    return hmac.compare_digest(key.strip().encode(), mock.api_key.encode())


def api(handler: Handler, *, auth: bool = True) -> Callable[[Request], Awaitable[JSONResponse]]:
    """Wrap a route: Bearer check, Refusal and validation errors as Kotani's bodies."""

    async def endpoint(request: Request) -> JSONResponse:
        mock: MockKotani = request.app.state.mock
        if auth and not _authorized(mock, request):
            return refused(401, "Unauthorized")
        try:
            async with mock.lock:
                result = await handler(request)
        except Refusal as exc:
            return refused(exc.status, exc.message)
        except ValidationError as exc:
            fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
            return refused(400, f"Bad Request: invalid {', '.join(fields) or 'body'}")
        if isinstance(result, JSONResponse):
            return result
        return ok(result)

    return endpoint


async def body_of(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise Refusal(400, "Bad Request: the body is not JSON") from None
    if not isinstance(body, dict):
        raise Refusal(400, "Bad Request: the body is not a JSON object")
    return body


def validated(model: type[BaseModel], value: Any) -> dict[str, Any]:
    return model.model_validate(value).model_dump(mode="json", by_alias=False, exclude_none=True)
