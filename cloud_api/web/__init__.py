"""The web cabinets of the owner, the partners and the companies: server-rendered pages on the
same FastAPI app and service layer as the JSON API. Everything they load ships in the package."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

STATIC = Path(__file__).with_name("static")


def install(app: FastAPI) -> None:
    """Pages, their error pages, the packaged assets, and /docs without a CDN."""
    import swagger_ui_bundle  # type: ignore[import-untyped]  # ships no type hints

    from cloud_api.web import (
        auth_pages,
        company_pages,
        company_pages_devices,
        company_pages_licences,
        company_pages_pos,
        errors,
        org_pages,
        owner_pages,
        partner_pages,
    )

    app.mount("/static/swagger", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    errors.install(app)
    for module in (
        auth_pages,
        owner_pages,
        partner_pages,
        company_pages,
        company_pages_devices,
        company_pages_licences,
        company_pages_pos,
        org_pages,
    ):
        app.include_router(module.router)

    @app.get("/docs", include_in_schema=False)
    def swagger_page() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="kassa cloud API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/swagger/favicon-32x32.png",
        )
