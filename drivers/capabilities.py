"""python-escpos's printer database, read straight from the JSON file its package ships.

Profiles and code pages need only this data. ``escpos.capabilities`` would parse the same file
with PyYAML, pickle it into a new temp dir and call ``logging.basicConfig()`` on import; reading
it here keeps those (and python-escpos's printer classes) out of a process that prints nothing.
"""

from __future__ import annotations

import json
import os
from functools import cache
from importlib.resources import files
from typing import Any


@cache
def capabilities() -> dict[str, Any]:
    """The database as python-escpos loads it (``profiles``, ``encodings``)."""
    if os.environ.get("ESCPOS_CAPABILITIES_FILE"):
        # another database (possibly YAML) chosen for python-escpos: let it load that one as before
        from escpos.capabilities import CAPABILITIES

        return dict(CAPABILITIES)
    data: dict[str, Any] = json.loads(files("escpos").joinpath("capabilities.json").read_text(encoding="utf-8"))
    return data
