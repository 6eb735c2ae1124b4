"""The cloud service's HTTP API (FastAPI)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from cloud_api.settings import CloudSettings


def create_app(settings: CloudSettings, engine: Engine) -> FastAPI:
    app = FastAPI(title="kassa cloud", version="1")
    app.state.settings = settings
    app.state.engine = engine

    @app.get("/healthz", summary="Liveness and database reachability")
    def healthz() -> JSONResponse:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            return JSONResponse({"status": "unhealthy", "database": "unreachable", "detail": str(exc.__cause__ or exc)}, status_code=503)
        return JSONResponse({"status": "ok", "database": engine.dialect.name})

    return app
