"""``GET /openapi.json`` (the OpenAPI 3.1 document, ``spec.build_spec``) and ``GET /docs`` (the
same document as one self-contained HTML page: Jinja2, inline CSS, no script, no CDN).

Both are built once per app, on the first request for either, from the app's settings.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from receiver.handlers.spec import build_spec
from receiver.settings import Settings

if TYPE_CHECKING:
    from jinja2 import Environment


@functools.cache
def _templates() -> Environment:
    # On the first /docs request: Jinja2 is ~20 modules and 2 MB that serve needs for no other
    # page (the console's load it on their own first use).
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    templates = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    templates.filters["code"] = _code
    return templates


def _code(text: object) -> Markup:
    """Escaped text whose `backticked` parts are shown as code (the descriptions' markup)."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))  # noqa: S704


_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
DOCS_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _short(value: Any) -> Any:
    """``value`` with every long string (the reference pattern's 5 KB) cut for reading."""
    if isinstance(value, dict):
        return {k: _short(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_short(v) for v in value]
    if isinstance(value, str) and len(value) > 120:
        return f"{value[:60]}… ({len(value)} characters: see /openapi.json)"
    return value


def _schema_text(schema: Any) -> str:
    """A schema as the page shows it: a component's name, or compact JSON."""
    if isinstance(schema, dict) and set(schema) == {"$ref"}:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    return json.dumps(_short(schema), ensure_ascii=False)


def render_docs(spec: dict[str, Any]) -> str:
    """Every operation with its parameters, body and answers, then every schema."""
    operations = [
        {"path": path, "method": method.upper(), **item[method]}
        for path, item in spec["paths"].items()
        for method in _METHODS
        if method in item
    ]
    schemas = {
        name: json.dumps(_short(schema), indent=2, ensure_ascii=False)
        for name, schema in spec["components"]["schemas"].items()
    }
    return _templates().get_template("docs.html").render(
        spec=spec, operations=operations, schemas=schemas, schema_text=_schema_text
    )


class ApiDocs:
    """The document and its page for one app, built lazily (the reference pattern costs
    about half a second to compute) and kept."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._built: tuple[bytes, str] | None = None
        self._lock = asyncio.Lock()

    def _build(self) -> tuple[bytes, str]:
        spec = build_spec(self.settings)
        document = json.dumps(spec, ensure_ascii=False, separators=(",", ":")).encode()
        return document, render_docs(spec)

    async def built(self) -> tuple[bytes, str]:
        """The document and the page; built once, on a thread (the event loop keeps serving)."""
        if self._built is None:
            async with self._lock:
                if self._built is None:
                    self._built = await asyncio.to_thread(self._build)
        return self._built

    async def openapi_json(self, request: Request) -> Response:
        document, _ = await self.built()
        return Response(document, media_type="application/json")

    async def docs(self, request: Request) -> Response:
        _, page = await self.built()
        return HTMLResponse(page, headers=DOCS_HEADERS)


def routes(settings: Settings) -> list[Route]:
    api = ApiDocs(settings)
    return [
        Route("/openapi.json", api.openapi_json, methods=["GET"]),
        Route("/docs", api.docs, methods=["GET"]),
    ]
