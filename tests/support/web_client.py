"""A browser-like HTTP client for the cabinets of a running cloud (the demo, `make up`'s checks,
the benchmark): keeps cookies, sends each form with the CSRF token of the page it came from."""

from __future__ import annotations

import re
from typing import Any

import httpx

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class CabinetClient:
    def __init__(self, base_url: str, *, language: str = "en") -> None:
        self.http = httpx.Client(
            base_url=base_url, follow_redirects=False, timeout=30, headers={"Accept-Language": language}
        )
        self.csrf = ""

    def get(self, path: str, *, expect: int | None = 200) -> httpx.Response:
        reply = self.http.get(path)
        found = _CSRF.search(reply.text) if "text/html" in reply.headers.get("content-type", "") else None
        if found:
            self.csrf = found.group(1)
        if expect is not None and reply.status_code != expect:
            raise AssertionError(f"GET {path}: {reply.status_code}, expected {expect}: {reply.text[:300]}")
        return reply

    def post(self, path: str, data: dict[str, Any] | None = None, *, expect: int | None = 303) -> httpx.Response:
        if not self.csrf:
            self.get("/signin")
        reply = self.http.post(path, data={**(data or {}), "csrf_token": self.csrf})
        if expect is not None and reply.status_code != expect:
            raise AssertionError(f"POST {path}: {reply.status_code}, expected {expect}: {_text(reply.text)[:600]}")
        return reply

    def follow(self, reply: httpx.Response) -> httpx.Response:
        return self.get(reply.headers["location"])

    def sign_in(self, email: str, password: str) -> httpx.Response:
        self.get("/signin")
        return self.follow(self.post("/signin", {"email": email, "password": password}))

    def close(self) -> None:
        self.http.close()


def _text(html: str) -> str:
    """The words of a page, for error messages."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
