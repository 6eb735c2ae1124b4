"""Build the push publisher of `kassa-cloud worker` from the service settings."""

from __future__ import annotations

from sqlalchemy import Engine

from cloud_api.pushes.mqtt import BrokerOptions
from cloud_api.pushes.publisher import PublisherOptions, PushPublisher
from cloud_api.settings import CloudSettings


def publisher_from_settings(settings: CloudSettings, engine: Engine) -> PushPublisher:
    """A publisher on the same broker account and TLS files as the ingest worker."""
    password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    broker = BrokerOptions(
        host=settings.mqtt_host,
        port=settings.mqtt_port,
        client_id=f"kassa-pushes-{settings.worker_id}",
        username=settings.mqtt_username,
        password=password,
        ca_file=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None,
        cert_file=str(settings.mqtt_cert_file) if settings.mqtt_cert_file else None,
        key_file=str(settings.mqtt_key_file) if settings.mqtt_key_file else None,
    )
    options = PublisherOptions(
        poll_s=settings.push_poll_s,
        lease_s=settings.push_lease_s,
        command_resend_s=settings.command_resend_s,
        command_max_attempts=settings.command_max_attempts,
    )
    return PushPublisher(engine, broker, options=options)
