"""Small builders the OpenAPI document (``spec``, ``spec_console``) is written with.

Every JSON error answer is the one ``ErrorBody`` shape; each status carries a description of
when the route answers it. Statuses the middleware answers on every route (429) are added by
``operation`` so no route can forget them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Json = dict[str, Any]

ERROR = {"$ref": "#/components/schemas/ErrorBody"}
RETRY_AFTER = {
    "description": "Seconds to wait before trying again.",
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}

COMMON_ERRORS: dict[int, str] = {
    400: "`request.invalid_json`: the body is empty, not JSON, or not a JSON object.",
    401: "`auth.unauthorized`: missing or wrong credentials (never says which).",
    404: "`not_found`.",
    408: "`request.timeout`: the body did not arrive within 10 s.",
    409: "`conflict`: the request contradicts recorded state.",
    413: "`request.too_large`: the body is over this route's limit (the connection is closed).",
    415: "`request.unsupported_media_type`: the body is not JSON and its Content-Type says it is"
    " not JSON either.",
    422: "`request.validation`: well-formed JSON, but a field is missing or out of range.",
    429: "`rate_limited`: too many refusals from this client IP in the window"
    " (RECEIVER_RATE_LIMIT_FAILURES) or too many calls with this invoice token"
    " (RECEIVER_RATE_LIMIT_TOKEN).",
    503: "A dependency failed (`storage.unavailable`, `mint.unavailable`, ...): retry later."
    " Never a 500.",
}


def schema_ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def json_answer(description: str, schema: Json, *, headers: Json | None = None) -> Json:
    answer: Json = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    return answer


def error_answer(status: int, description: str | None = None) -> Json:
    headers: Json = {}
    if status == 429:
        headers["Retry-After"] = {**RETRY_AFTER, "required": True}
    elif status == 503:
        headers["Retry-After"] = RETRY_AFTER
    return json_answer(description or COMMON_ERRORS[status], ERROR, headers=headers)


def _either(page: Json, error: Json) -> Json:
    """One status that two parts of the app answer: both bodies, no header required."""
    headers = {
        name: {k: v for k, v in header.items() if k != "required"}
        for name, header in {**error.get("headers", {}), **page.get("headers", {})}.items()
    }
    merged: Json = {
        "description": f"{page['description']} Or, from the middleware: {error['description']}",
        "content": {**error.get("content", {}), **page.get("content", {})},
    }
    if headers:
        merged["headers"] = headers
    return merged


def html_answer(description: str, *, headers: Json | None = None) -> Json:
    answer: Json = {"description": description, "content": {"text/html": {"schema": STRING}}}
    if headers:
        answer["headers"] = headers
    return answer


STRING: Json = {"type": "string"}
SEE_OTHER: Json = {
    "description": "Redirect (303 See Other).",
    "headers": {"Location": {"required": True, "schema": STRING}},
}


def parameter(
    name: str,
    where: str,
    schema: Json,
    description: str,
    *,
    required: bool = False,
) -> Json:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "description": description,
        "schema": schema,
    }


def operation(
    operation_id: str,
    summary: str,
    *,
    tag: str,
    answers: Mapping[int, Json],
    errors: dict[int, str | None] | None = None,
    description: str = "",
    parameters: list[Json] | None = None,
    body: Json | None = None,
    security: list[Json] | None = None,
    rate_limited: bool = True,
) -> Json:
    """One operation; ``errors`` maps a status to its description (None: the common one). A
    status in both (an HTML page and the middleware's JSON error) documents both bodies."""
    every = dict(errors or {})
    if rate_limited:
        every.setdefault(429, None)
    responses: Json = {}
    for status in sorted({*answers, *every}):
        answer = answers.get(status)
        error = error_answer(status, every[status]) if status in every else None
        if answer is not None and error is not None:
            answer = _either(answer, error)
        responses[str(status)] = answer or error
    spec: Json = {"operationId": operation_id, "summary": summary, "tags": [tag]}
    if description:
        spec["description"] = description
    if parameters:
        spec["parameters"] = parameters
    if body is not None:
        spec["requestBody"] = body
    spec["responses"] = responses
    if security is not None:
        spec["security"] = security
    return spec


def json_body(schema: Json, description: str = "", *, required: bool = True) -> Json:
    body: Json = {"required": required, "content": {"application/json": {"schema": schema}}}
    if description:
        body["description"] = description
    return body


def form_body(properties: dict[str, Json], required: list[str], description: str = "") -> Json:
    schema: Json = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    body: Json = {
        "required": True,
        "content": {"application/x-www-form-urlencoded": {"schema": schema}},
    }
    if description:
        body["description"] = description
    return body
