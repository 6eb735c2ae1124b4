"""The installed kassa version (status, state reports, diagnostics)."""

from importlib import metadata


def agent_version() -> str:
    try:
        return metadata.version("kassa")
    except metadata.PackageNotFoundError:
        return "0+unknown"
