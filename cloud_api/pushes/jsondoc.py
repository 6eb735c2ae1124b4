"""Checks every JSON document the pushes store (state docs, command arguments) must pass,
so that both databases store it and the wire contract can send it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def json_problem(value: Any) -> str | None:
    """Why `value` cannot be stored as JSON on both databases, or None if it can."""
    if _holds_nul(value):
        # PostgreSQL JSONB cannot store it; refused on every database alike.
        return "it holds a NUL character (\\u0000)"
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode()
    except (TypeError, ValueError) as exc:  # a set, bytes, NaN, a lone surrogate, ...
        return f"it is not JSON ({str(exc)[:200]})"
    return None


def _holds_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False
