"""Create the cloud tables. A stop-gap until Alembic migrations manage the schema."""

from __future__ import annotations

import logging

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, ProgrammingError

from cloud_api.models import Base

log = logging.getLogger(__name__)


def create_schema(engine: Engine) -> None:
    """Create missing tables; safe to call from several workers starting at once."""
    try:
        Base.metadata.create_all(engine)
    except (IntegrityError, ProgrammingError) as exc:
        # Two PostgreSQL sessions creating the same table race on the catalog's unique
        # indexes; the loser finds every table present on the second pass.
        log.info("schema created concurrently; checking again", extra={"error": str(exc.orig)})
        Base.metadata.create_all(engine)
