"""The POS API component (``"pos_api"``): HTTP + WebSocket for a web POS, served by uvicorn
as a task on the agent loop, so handlers call the components it was built with directly.

Bound to ``[pos_api] bind``:``port`` (127.0.0.1:8765 by default); a LAN address needs TLS
(checked when the config is loaded). A port already in use does not stop the agent: the
error is logged and shown in ``kassactl status``, and binding is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import uvicorn

from agent.config import ConfigError
from agent.posapi.app import build_app
from agent.posapi.service import PosParts, PosService
from agent.posapi.tokens import PosTokens
from agent.runtime import Runtime

log = logging.getLogger(__name__)

RETRY_MIN_S, RETRY_MAX_S = 1.0, 30.0


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the agent owns SIGTERM/SIGINT; it stops this server through PosApi.stop


class PosApi:
    name = "pos_api"

    def __init__(self, runtime: Runtime, parts: PosParts) -> None:
        self.config = runtime.config.pos_api
        self.tokens = PosTokens(runtime.store)
        self.service = PosService(runtime, parts, self.tokens)
        self.port: int | None = None
        self.error: str | None = None
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._bound = asyncio.Event()

    @property
    def scheme(self) -> str:
        return "https" if self.config.tls_cert_file else "http"

    @property
    def url(self) -> str | None:
        host = f"[{self.config.bind}]" if ":" in self.config.bind else self.config.bind
        return None if self.port is None else f"{self.scheme}://{host}:{self.port}"

    async def start(self) -> None:
        if not self.config.enabled:
            log.info("POS API disabled ([pos_api] enabled = false)")
            return
        if self.config.tls_cert_file is not None:
            try:  # a clear error now rather than a failed handshake later
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                    self.config.tls_cert_file, self.config.tls_key_file
                )
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"[pos_api] tls_cert_file / tls_key_file cannot be used: {exc}") from None
        self._task = asyncio.create_task(self._serve(), name="pos-api")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._bound.wait(), 5.0)

    async def _serve(self) -> None:
        delay = RETRY_MIN_S
        while not self.service.closing:
            try:
                sock = self._bind()
            except OSError as exc:
                self.error = f"cannot listen on {self.config.bind}:{self.config.port}: {exc.strerror or exc}"
                log.error("POS API not serving; retrying", extra={"problem": self.error, "retry_s": delay})
                self._bound.set()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            self.port, self.error = sock.getsockname()[1], None
            config = uvicorn.Config(
                build_app(self.service),
                log_config=None,
                access_log=False,
                lifespan="off",
                server_header=False,
                date_header=False,
                proxy_headers=False,
                timeout_graceful_shutdown=2,
                ws_max_size=64 * 1024,
                ssl_certfile=self.config.tls_cert_file,
                ssl_keyfile=self.config.tls_key_file,
            )
            self._server = _Server(config)
            log.info(
                "POS API listening",
                extra={"url": self.url, "tls": self.scheme == "https", "tokens": self.tokens.active},
            )
            self._bound.set()
            try:
                await self._server.serve(sockets=[sock])
            finally:
                sock.close()
            if not self.service.closing:  # uvicorn ended on its own: start again
                log.error("POS API server stopped unexpectedly; restarting")
                await asyncio.sleep(RETRY_MIN_S)

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.config.bind else socket.AF_INET
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP; with
        # proto 0 every response (head and body are two writes) would stall 40 ms on Nagle + delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.config.bind, self.config.port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    async def stop(self) -> None:
        self.service.closing = True
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 5.0)
            except (TimeoutError, Exception):
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)

    def status(self) -> dict[str, Any]:
        if not self.config.enabled:
            summary = "disabled"
        elif self.error:
            summary = f"not serving: {self.error}"
        else:
            summary = (
                f"serving {self.url}; {self.tokens.active} POS token(s), {self.service.websockets} event stream(s)"
            )
        return {
            "summary": summary,
            "enabled": self.config.enabled,
            "url": self.url,
            "port": self.port,
            "error": self.error,
            "tokens": self.tokens.active,
            "websockets": self.service.websockets,
            "cors_origins": self.config.cors_origins,
        }
