"""The cloud service's HTTP API (FastAPI)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from cloud_api import metrics, web
from cloud_api.api import (
    auth,
    cashiers,
    device_certificates,
    device_sales,
    devices,
    documents,
    errors,
    licences,
    links,
    pairing,
    pushes,
    tenancy,
    z_reports,
)
from cloud_api.mail.sender import MailSender
from cloud_api.settings import CloudSettings

log = logging.getLogger(__name__)


def create_app(settings: CloudSettings, engine: Engine) -> FastAPI:
    """The HTTP API on `engine`, whose schema must be current (`schema.upgrade`).

    While it runs (its lifespan), the mail sender delivers queued mail when `mail_host` is set;
    `app.state.mail_sender` is that sender (None when mail is off): call its `wake()` after
    committing a mail."""
    mail_sender = MailSender(engine, settings) if settings.mail_host else None

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if mail_sender is None:
            log.warning("mail is off (KASSA_CLOUD_MAIL_HOST unset): mails stay queued until it is set")
            yield
            return
        mail_sender.start()
        try:
            yield
        finally:
            await asyncio.to_thread(mail_sender.stop)  # may wait for a send in progress

    app = FastAPI(
        lifespan=lifespan,
        title="kassa cloud",
        version="1",
        description="Admin API of the kassa cloud: tenancy, users and tokens, devices, "
        "sales, pairing. Every endpoint but /healthz, /pki/device-crl.pem and the devices' own /pairing/registrations, "
        "/pairing/poll, /pairing/renewals and /device-api/sales/lookup (signed with the device key) needs "
        "`Authorization: Bearer <token>`.",
        docs_url=None,  # served by cloud_api.web from packaged assets (no CDN)
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.mail_sender = mail_sender
    errors.install(app)
    web.install(app)  # the cabinets' pages, their error pages, /static and /docs
    for module in (
        auth,
        tenancy,
        links,
        devices,
        device_certificates,
        z_reports,
        pairing,
        device_sales,
        pushes,
        cashiers,
        licences,
        documents,
    ):
        app.include_router(module.router)
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    metrics.install(app, engine, token)  # GET /metrics (Prometheus) and the HTTP latency middleware

    @app.get("/healthz", summary="Liveness and database reachability")
    def healthz() -> JSONResponse:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            return JSONResponse(
                {"status": "unhealthy", "database": "unreachable", "detail": str(exc.__cause__ or exc)}, status_code=503
            )
        return JSONResponse({"status": "ok", "database": engine.dialect.name})

    return app
