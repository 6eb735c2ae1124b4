"""Cloud service settings: ``KASSA_CLOUD_*`` environment variables or command-line flags."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import Field, SecretStr
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
    mqtt_username: str | None = Field(None, description="Broker user of the ingest workers.")
    mqtt_password: SecretStr | None = Field(None, description="Broker password of that user.")
    mqtt_ca_file: Path | None = Field(None, description="CA that signed the broker's certificate; setting it turns TLS on.")
    mqtt_cert_file: Path | None = Field(None, description="Client certificate (CN kassa-cloud) for the broker's cloud listener.")
    mqtt_key_file: Path | None = Field(None, description="Private key of that certificate (mode 0600).")
    worker_id: str = Field(
        default_factory=socket.gethostname,
        pattern=r"^[A-Za-z0-9._-]{1,64}$",
        description="Stable id of an ingest worker (its MQTT session is kassa-ingest-<id>); "
        "a restarted worker must keep it to get back the messages it had not acknowledged.",
    )
    log_level: str = Field("info", description="debug, info, warning or error.")
    signing_key_file: Path = Field(
        Path("./kassa-cloud-signing.pem"), description="Ed25519 private key (PEM, mode 0600) the cloud signs configuration codes and leases with."
    )
    signing_key_id: str = Field("cloud-1", pattern=r"^[A-Za-z0-9._-]{1,64}$", description="Key id devices pin the public key under.")
