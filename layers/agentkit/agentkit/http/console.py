"""The console function's routes: GET /console (the page) and GET /console/{asset} (its
script, style sheet and icon), public like GET /openapi.json.

The files hold no data: the page asks the same API for everything with the API key the
user types into it (kept in the browser's session storage, sent as a header, never in a
URL). Only the files the function ships are served, by exact name, with a strict
Content-Security-Policy (this origin only, no inline script or style), so nothing the API
answers can run as script in the page, and nothing is fetched from anywhere else.

The routes are left out of the OpenAPI document on purpose: they are not API operations
(no key, no JSON), and a client generated from the document has nothing to call there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from types import MappingProxyType
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from agentkit.http.errors import error_response

#: The page's name among the assets; GET /console answers it.
PAGE = "index.html"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

#: Everything from this origin only; no inline script or style (the page has none), no
#: plugins, no framing, forms and <base> pinned. `connect-src 'self'`: the API is the
#: page's own origin.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
])

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # A deploy replaces the files: the browser checks again rather than keep an old script.
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class Asset:
    content_type: str
    body: str


@dataclass(frozen=True)
class ConsoleRoutes:
    """What the routes need from their function: the files it ships, by name."""

    assets: Mapping[str, Asset]

    @classmethod
    def from_directory(cls, directory: Path) -> ConsoleRoutes:
        """The directory's files of a known type (read once, at cold start); the page must
        be among them."""
        assets = {
            path.name: Asset(CONTENT_TYPES[path.suffix], path.read_text(encoding="utf-8"))
            for path in sorted(directory.iterdir())
            if path.is_file() and path.suffix in CONTENT_TYPES
        }
        if PAGE not in assets:
            raise FileNotFoundError(f"the console's {PAGE} is missing from {directory}")
        return cls(assets=MappingProxyType(assets))


def router(deps: ConsoleRoutes) -> Router:
    routes = Router()

    def missing(name: str) -> Response[Any]:
        return error_response(HTTPStatus.NOT_FOUND, "not_found", f"no console file {name!r}")

    def serve(name: str) -> Response[Any]:
        asset = deps.assets.get(name)
        if asset is None:
            return missing(name)
        return Response(
            status_code=HTTPStatus.OK.value,
            content_type=asset.content_type,
            body=asset.body,
            headers=dict(SECURITY_HEADERS),
        )

    @routes.get("/console", include_in_schema=False)
    def console_page() -> Response[Any]:
        if routes.current_event.path.endswith("/"):
            # /console/ reaches this route too, but the page's files are named relative to
            # /console: send the browser there (relative, so under any stage or base path).
            return Response(
                status_code=HTTPStatus.PERMANENT_REDIRECT.value,
                body="",
                headers={"Location": "../console", **SECURITY_HEADERS},
            )
        return serve(PAGE)

    @routes.get("/console/<asset>", include_in_schema=False)
    def console_asset(asset: str) -> Response[Any]:
        # The page names its files relative to /console: served at another path, it would
        # load none of them.
        return missing(asset) if asset == PAGE else serve(asset)

    return routes
