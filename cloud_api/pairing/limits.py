"""Limits on the unauthenticated pairing endpoints: requests per client address, body size.

The rate limit is kept in this process's memory: enough to stop one misbehaving terminal or
script. With several API processes each counts on its own; a flood from many addresses is
for the reverse proxy in front (see docs/deployment.md).
"""

from __future__ import annotations

import threading
import time
from collections import deque

from starlette.requests import Request

from cloud_api.api.errors import ApiError

WINDOW_S = 60.0
# Registration and poll bodies are ~2 KiB; anything far larger is not a terminal.
MAX_BODY_BYTES = 16 * 1024
_MAX_TRACKED_CLIENTS = 50_000


class RateLimiter:
    """At most `per_minute` requests per key in any sliding 60 s window."""

    def __init__(self, per_minute: int, what: str = "pairing requests") -> None:
        self.per_minute = per_minute
        self.what = what  # named in the refusal: "too many <what> from <key>"
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        """Count one request of `key`, or raise 429 `rate_limited` with Retry-After."""
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - WINDOW_S:
                hits.popleft()
            if len(hits) >= self.per_minute:
                retry = max(1, int(hits[0] + WINDOW_S - now) + 1)
                raise ApiError(
                    429,
                    "rate_limited",
                    f"too many {self.what} from {key}; retry in {retry} s",
                    {"Retry-After": str(retry)},
                )
            hits.append(now)
            if len(self._hits) > _MAX_TRACKED_CLIENTS:
                self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        idle = [key for key, hits in self._hits.items() if not hits or hits[-1] <= now - WINDOW_S]
        for key in idle:
            del self._hits[key]


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused with 413 `too_large` as soon as it passes `limit` bytes
    (before it is all read, also for chunked uploads without Content-Length)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise ApiError(413, "too_large", f"a pairing request body is at most {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", f"a pairing request body is at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
