"""The installed kassa version (status, state reports, diagnostics)."""

import functools
from importlib import metadata


@functools.cache
def agent_version() -> str:
    """Read once per process: it is the version of the code that runs, and reading the
    package metadata costs ~0.2 ms, paid on every device state report (each connect and
    each pushed document) before it was cached."""
    try:
        return metadata.version("kassa")
    except metadata.PackageNotFoundError:
        return "0+unknown"
