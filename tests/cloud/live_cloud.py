"""The cloud app served by uvicorn on a free loopback port, in a thread (for browser tests):
its lifespan runs, so the mail sender delivers to the test's SMTP server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from broker.launcher import free_port


@contextmanager
def serving(make_app: Callable[[str], Any]) -> Iterator[str]:
    """Serve `make_app(base_url)` (the app is made knowing its own address: links in mails)."""
    port = free_port()
    app = make_app(f"http://127.0.0.1:{port}")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="live-cloud", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the cloud did not start serving")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
