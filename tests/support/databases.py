"""Where the cloud tests find PostgreSQL (the server at 127.0.0.1:5432 on the dev machines)."""

from __future__ import annotations

import os
import socket

import pytest

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_url() -> str:
    """The test database URL; skips loudly (a warning in the summary) when no server answers."""
    url = os.environ.get("KASSA_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
    except OSError:
        pytest.skip(f"PostgreSQL NOT TESTED: no server at {url} (set KASSA_TEST_POSTGRES_URL)")
    return url
