"""The cloud's HTTP server as `kassa-cloud serve` runs it (same app, same uvicorn settings),
plus one outer ASGI layer that tells each response's server time in a `Server-Timing`
header: from the moment uvicorn hands the parsed request to the app until the response
starts (a page is rendered whole before it starts). The cabinets benchmark reads it per
request; the app's own latency histogram (GET /metrics) only has buckets. Below: starting it
for the benchmark and reading that histogram.

    python -m bench.cabinets_server --database-url URL [--port 8080]
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.logs import setup_logging
from cloud_api.app import create_app
from cloud_api.db import make_engine
from cloud_api.settings import CloudSettings

HEADER = b"server-timing"
HISTOGRAM = "kassa_cloud_http_request_duration_seconds"
ROOT = Path(__file__).resolve().parent.parent


class ServerTiming:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed_ms = (time.perf_counter() - started) * 1000
                headers = [*message.get("headers", []), (HEADER, f"app;dur={elapsed_ms:.3f}".encode())]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_timed)


# ------------------------------------------------------------------------------ for the benchmark
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def cloud_server(url: str) -> Iterator[str]:
    """The cloud's HTTP server on `url` in its own process; its base URL while it runs."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="kassa-bench-cabinets-", dir="/var/tmp") as workdir:
        log = Path(workdir) / "cloud.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "bench.cabinets_server", "--database-url", url, "--port", str(port)],
                cwd=ROOT,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
                    raise SystemExit(f"the cloud server did not come up (exit status {process.poll()}):\n{tail}")
                time.sleep(0.2)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def histogram(base: str) -> dict[str, dict[float, float]]:
    """GET requests answered 200, per route: cumulative count per bucket bound (seconds)."""
    found: dict[str, dict[float, float]] = {}
    for family in text_string_to_metric_families(httpx.get(f"{base}/metrics", timeout=30).text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == f"{HISTOGRAM}_bucket" and labels.get("method") == "GET" and labels["status"] == "200":
                found.setdefault(labels["route"], {})[float(labels["le"])] = sample.value
    return found


def histogram_p95_ms(before: dict[float, float], after: dict[float, float]) -> float | None:
    """The 95th percentile of the requests between two scrapes, linear inside its bucket."""
    bounds = sorted(after)
    counts = [after[bound] - before.get(bound, 0.0) for bound in bounds]
    if not counts or counts[-1] <= 0:
        return None
    rank = 0.95 * counts[-1]
    lower, below = 0.0, 0.0
    for bound, cumulative in zip(bounds, counts, strict=True):
        if cumulative >= rank:
            if bound == float("inf"):
                return lower * 1000
            return (lower + (bound - lower) * (rank - below) / (cumulative - below)) * 1000
        lower, below = bound, cumulative
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    import uvicorn

    settings = CloudSettings(database_url=args.database_url, http_host=args.host, http_port=args.port)
    setup_logging(settings.log_level, settings.log_format)
    engine = make_engine(settings.database_url)  # the schema is the seed's: already current
    uvicorn.run(
        ServerTiming(create_app(settings, engine)),
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level,
        log_config=None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
