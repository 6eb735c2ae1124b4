"""An agent running in a thread of the test process, for tests that call its API directly.

Tests that kill the agent use ``AgentProcess`` instead; this harness is for the
ones that need to enqueue, inspect and wait without a control-socket round trip.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from agent.cloud.link import CloudLink
from agent.config import load_config
from agent.daemon import Agent

T = TypeVar("T")


class InProcessAgent:
    def __init__(self, config_path: Path) -> None:
        self.config = load_config(config_path)
        self.agent = Agent(self.config, config_path)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.exit_code: int | None = None
        self.error: BaseException | None = None

    def start(self, timeout_s: float = 20) -> InProcessAgent:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            try:
                self.exit_code = loop.run_until_complete(self.agent.run(handle_signals=False))
            except BaseException as exc:  # surfaced by wait_until / stop
                self.error = exc
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="agent-under-test", daemon=True)
        self._thread.start()
        ready.wait(timeout_s)
        self.wait_until(lambda: self.agent.state == "running", timeout_s, "agent running")
        return self

    @property
    def cloud(self) -> CloudLink:
        return next(c for c in self.agent.components if isinstance(c, CloudLink))

    def call(self, func: Callable[[], T], timeout_s: float = 20) -> T:
        """Run ``func`` on the agent's loop (where agent state lives) and return its result."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(_as_coroutine(func), self._loop)
        return future.result(timeout_s)

    def wait_until(self, predicate: Callable[[], bool], timeout_s: float = 30, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.error is not None:
                raise RuntimeError(f"agent failed: {self.error!r}") from self.error
            if predicate():
                return
            time.sleep(0.02)
        raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")

    def stop(self, timeout_s: float = 30) -> int | None:
        if self._thread is None:
            return self.exit_code
        self.agent.request_stop("test")
        self._thread.join(timeout_s)
        self._thread = None
        if self.error is not None:
            raise RuntimeError(f"agent failed: {self.error!r}") from self.error
        return self.exit_code


async def _as_coroutine(func: Callable[[], Any]) -> Any:
    return func()
