"""Before ``kassa-cloud serve`` or ``worker`` starts: are the database and the broker there?

Either one missing at start is an operator's problem, not a bug: it gets one line saying which,
where (the URL without its password) and what to check, and the exit code ``EX_UNAVAILABLE``
(documented in docs/cloud-api.md), where a traceback of a hundred lines would hide the point.
Once started, the service rides out the same outages by itself (the pool reconnects, the worker's
MQTT connection retries).
"""

from __future__ import annotations

import socket

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

EX_UNAVAILABLE = 69  # sysexits.h: a service the program needs is not available
BROKER_TIMEOUT_S = 5.0


class Unavailable(Exception):
    """The one line to print: which service, where, and what to check."""


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return lines[0] if lines else type(cause).__name__


def check_database(engine: Engine) -> None:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        where = make_url(str(engine.url)).render_as_string(hide_password=True)
        raise Unavailable(
            f"cannot reach the database at {where} ({_first_line(exc)}); check that the database server is "
            "running and reachable from here and that KASSA_CLOUD_DATABASE_URL (--database-url) is right"
        ) from None


def check_broker(host: str, port: int) -> None:
    try:
        with socket.create_connection((host, port), timeout=BROKER_TIMEOUT_S):
            pass
    except OSError as exc:
        raise Unavailable(
            f"cannot reach the broker at {host}:{port} ({exc.strerror or exc}); check that Mosquitto is running "
            "and reachable from here and that KASSA_CLOUD_MQTT_HOST / KASSA_CLOUD_MQTT_PORT (--mqtt-host, "
            "--mqtt-port) are right"
        ) from None
