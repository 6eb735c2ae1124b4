"""The FastAPI application of the POS API: routes (agent/posapi/routes.py), CORS, errors."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from agent.posapi import errors, events_ws, metrics, routes, status_page
from agent.posapi.service import PosService
from agent.version import agent_version

MAX_BODY_BYTES = 256 * 1024


class BodyLimit:
    """Refuse a declared body over MAX_BODY_BYTES before reading it (413, the usual error shape)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length", b"0")
            if not length.isdigit() or int(length) > MAX_BODY_BYTES:
                response = errors.ApiError(
                    "request.too_large", f"the request body is over {MAX_BODY_BYTES} bytes"
                ).response(language_tag=errors.site_language(scope.get("app")))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def build_app(pos: PosService) -> FastAPI:
    app = FastAPI(
        title="kassa POS API",
        version=agent_version(),
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        description="The terminal's local API for a web POS: see docs/pos-api.md.",
    )
    app.state.pos = pos
    errors.install(app)
    routes.add_routes(app)
    app.add_api_websocket_route(routes.WEBSOCKET.path, events_ws.events)
    # the technician's read-only status page (HTML), beside the API
    status_page.add_routes(app)
    metrics.add_metrics_route(app, pos)  # GET /metrics (Prometheus), loopback or POS token
    app.add_middleware(BodyLimit)
    if pos.config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(pos.config.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", routes.SESSION_HEADER],
            max_age=600,
        )
    return app
