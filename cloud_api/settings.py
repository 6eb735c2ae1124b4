"""Cloud service settings: ``KASSA_CLOUD_*`` environment variables or command-line flags."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

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
    mqtt_ca_file: Path | None = Field(
        None, description="CA that signed the broker's certificate; setting it turns TLS on."
    )
    mqtt_cert_file: Path | None = Field(
        None, description="Client certificate (CN kassa-cloud) for the broker's cloud listener."
    )
    mqtt_key_file: Path | None = Field(None, description="Private key of that certificate (mode 0600).")
    worker_id: str = Field(
        default_factory=socket.gethostname,
        pattern=r"^[A-Za-z0-9._-]{1,64}$",
        description="Stable id of an ingest worker (its MQTT session is kassa-ingest-<id>); "
        "a restarted worker must keep it to get back the messages it had not acknowledged.",
    )
    push_enabled: bool = Field(
        True,
        description="Run the push publisher (desired-state documents, commands) in kassa-cloud worker; "
        "several workers may run it, one publishes at a time.",
    )
    push_poll_s: float = Field(
        0.25, gt=0, le=60, description="How often the publisher looks for changed documents and due commands."
    )
    push_lease_s: float = Field(
        15.0,
        ge=1,
        le=600,
        description="Publisher lease: a standby worker takes over this long after the active one stopped renewing.",
    )
    command_resend_s: float = Field(
        30.0,
        gt=0,
        le=86_400,
        description="A command not answered is sent again after this, doubling with each attempt.",
    )
    command_max_attempts: int = Field(
        5, ge=1, le=100, description="Sends of one command before the cloud gives up waiting for its reply."
    )
    log_level: str = Field("info", description="debug, info, warning or error.")
    log_format: Literal["text", "json"] = Field(
        "text", description="Log lines as text (`ts level logger message key=value`) or one JSON object per line."
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token Prometheus sends to GET /metrics. Unset: only loopback clients may read the metrics.",
    )
    signing_key_file: Path = Field(
        Path("./kassa-cloud-signing.pem"),
        description="Ed25519 private key (PEM, mode 0600) the cloud signs configuration codes and leases with.",
    )
    signing_key_id: str = Field(
        "cloud-1", pattern=r"^[A-Za-z0-9._-]{1,64}$", description="Key id devices pin the public key under."
    )
    # Licences (cloud_api/licences): leases are signed with the signing key above.
    # The lower bounds allow the seconds-long lifetimes tests and demos use; production keeps days.
    licence_lease_s: int = Field(
        7 * 86400, ge=5, le=90 * 86400, description="Lifetime of a lease token (never past the licence's own expiry)."
    )
    licence_renew_after_s: int = Field(
        3600, ge=1, le=7 * 86400, description="Devices report (and get renewed leases) this often."
    )
    licence_clock_margin_s: int = Field(
        300, ge=0, le=86400, description="Added to a silent old device's lease expiry before its licence moves anyway."
    )
    licence_moves_per_hour: int = Field(
        10, ge=1, le=10_000, description="Moves (requests to another device) accepted per licence and hour."
    )
    licence_sweep_s: float = Field(
        15.0,
        gt=0,
        le=3600,
        description=(
            "How often the worker grants moves whose silent old device's lease ran out, and drops expired licences."
        ),
    )
    # Pairing (cloud_api/pairing): the cloud signs each claimed device's CSR with the device CA.
    device_ca_cert_file: Path | None = Field(
        None,
        description=(
            "Device CA certificate (PEM): signs terminals' broker certificates at pairing and renewal, and "
            "the device CRL. The broker's device listener trusts only this CA (make-certs.sh's device-ca.crt)."
        ),
    )
    device_ca_key_file: Path | None = Field(
        None,
        description="Private key of the device CA (PEM, mode 0600). Unset: pairing is unavailable (503). "
        "The cloud CA's key never belongs on the cloud host.",
    )
    device_cert_days: float = Field(
        825,
        gt=0,
        le=3650,
        description="Validity of a device certificate issued at pairing or renewal (never beyond the CA's own); "
        "devices renew when a third of it is left (agent: [cloud] certificate_renew_before_days).",
    )
    device_cert_renew_interval_s: int = Field(
        60,
        ge=0,
        le=86_400,
        description="A device gets at most one new certificate in this time (429 with Retry-After otherwise).",
    )
    device_crl_file: Path | None = Field(
        None,
        description=(
            "Where to write the device CRL each time a device is revoked, when the broker reads it on this "
            "host (it is also served at GET /pki/device-crl.pem)."
        ),
    )
    pairing_broker_host: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9.:-]{1,253}$",
        description=(
            "Broker host name paired devices connect to (in the broker certificate's subjectAltName); "
            "default mqtt_host."
        ),
    )
    pairing_broker_port: int = Field(
        8883, ge=1, le=65535, description="The broker's device listener port sent to paired devices."
    )
    pairing_broker_ca_file: Path | None = Field(
        None,
        description=(
            "CA bundle (PEM) of the broker's server certificate (the cloud CA), sent to devices; default mqtt_ca_file."
        ),
    )
    pairing_code_ttl_s: int = Field(
        24 * 3600,
        ge=60,
        le=30 * 24 * 3600,
        description="An unclaimed registration (and its code) is forgotten after this.",
    )
    pairing_poll_interval_s: float = Field(5.0, ge=1, le=300, description="How often waiting devices are told to poll.")
    pairing_requests_per_minute: int = Field(
        120,
        ge=1,
        description="Unauthenticated pairing requests accepted per client address and minute (per API process).",
    )
    signin_attempts_per_minute: int = Field(
        100,
        ge=1,
        description="Sign-in attempts accepted per client address and minute (per API process), whichever e-mail "
        "they try; an account also locks for 15 minutes after 5 wrong passwords.",
    )
    pairing_max_pending: int = Field(
        10_000, ge=1, description="Cap on unclaimed registrations; more are refused until some are claimed or expire."
    )
    # [mail] (cloud_api/mail): verification links, password resets and invitations go out through
    # an SMTP relay. Mails are queued in the database and sent by the `serve` process.
    mail_host: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9.:-]{1,253}$",
        description="SMTP relay the cloud sends mail through. Unset: mail is off and queued mails wait for it.",
    )
    mail_port: int = Field(25, ge=1, le=65535, description="Port of the SMTP relay (587 for submission).")
    mail_starttls: bool = Field(
        False, description="Upgrade the connection with STARTTLS (the relay's certificate is verified) before login."
    )
    mail_username: str | None = Field(None, description="Login at the SMTP relay; unset: send without logging in.")
    mail_password: SecretStr | None = Field(None, description="Password of that login.")
    mail_from: str = Field(
        "kassa <noreply@localhost>",
        pattern=r"^[^\r\n]{3,320}$",
        description="From header of every mail, e.g. `kassa <noreply@example.com>`; its address is also the sender.",
    )
    mail_poll_s: float = Field(
        5.0, gt=0, le=3600, description="How often the sender looks for due mails (a new mail wakes it at once)."
    )
    mail_max_attempts: int = Field(
        8, ge=1, le=100, description="Sends of one mail (30 s apart, doubling up to 1 h) before it is marked failed."
    )
    public_url: str = Field(
        "http://127.0.0.1:8080",
        pattern=r"^https?://[^\s]+$",
        description="Base URL of the cloud as users reach it; the links in mails start with it.",
    )
