"""Cloud service settings: ``KASSA_CLOUD_*`` environment variables or command-line flags."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CloudSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KASSA_CLOUD_", extra="forbid")

    database_url: str = Field(
        "sqlite:///./kassa-cloud.db",
        description="SQLAlchemy URL: a SQLite file (default) or postgresql+psycopg://user@host/db.",
    )
    http_host: str = Field("127.0.0.1", description="Address the admin HTTP API listens on.")
    http_port: int = Field(8080, ge=1, le=65535, description="Port of the admin HTTP API.")
    mqtt_host: str = Field("127.0.0.1", description="Broker the ingest workers connect to.")
    mqtt_port: int = Field(1883, ge=1, le=65535, description="Broker port.")
    log_level: str = Field("info", description="debug, info, warning or error.")
