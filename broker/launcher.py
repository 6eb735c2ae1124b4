"""Start a private Mosquitto for tests, benchmarks and the demo.

Each instance gets a generated config, a free loopback port and its own
directory (config, persistence, log). It can be stopped, killed with SIGKILL and
restarted on the same port with the same persistence, which is what the fault
tests need. Run ``python -m broker.launcher`` to start one by hand.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_BINARY_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


class BrokerError(RuntimeError):
    pass


def find_mosquitto() -> str:
    found = shutil.which("mosquitto") or next((p for p in DEFAULT_BINARY_PATHS if os.access(p, os.X_OK)), None)
    if found is None:
        raise BrokerError(
            "mosquitto is not installed. Install it with `apt-get install mosquitto` (make test does this)."
        )
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class Mosquitto:
    """A Mosquitto process on 127.0.0.1. Use as a context manager or call start()/stop()."""

    def __init__(
        self,
        workdir: Path | str | None = None,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        extra_config: str = "",
        binary: str | None = None,
        config_file: Path | str | None = None,
    ) -> None:
        """``config_file``: run this complete config instead of the generated one (for example a
        test copy of broker/production/mosquitto.conf). It must listen on ``host``:``port``,
        so ``port`` is required with it; ``extra_config`` is not used then."""
        if config_file is not None and port is None:
            raise BrokerError("Mosquitto(config_file=...) needs the port that file listens on")
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="kassa-mosquitto-"))
        self.host = host
        self.port = port
        self.extra_config = extra_config
        self.binary = binary or find_mosquitto()
        self.config_file = Path(config_file) if config_file is not None else None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.config_file if self.config_file is not None else self.workdir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    @property
    def persistence_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _write_config(self) -> None:
        self.persistence_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            "\n".join(
                [
                    f"listener {self.port} {self.host}",
                    "allow_anonymous true",
                    # Started as root, Mosquitto would switch to user 'mosquitto' and lose
                    # access to our private directory: stay whoever started us.
                    f"user {pwd.getpwuid(os.geteuid()).pw_name}",
                    "persistence true",
                    f"persistence_location {self.persistence_dir}/",
                    f"log_dest file {self.log_path}",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "log_timestamp_format %Y-%m-%dT%H:%M:%S",
                    # A terminal may be offline for days with acks queued for it.
                    "max_queued_messages 0",
                    "max_inflight_messages 0",
                    "persistent_client_expiration 14d",
                    self.extra_config,
                    "",
                ]
            )
        )

    def start(self, timeout_s: float = 10.0) -> Mosquitto:
        if self.running:
            return self
        pinned = self.port
        for _attempt in range(3 if pinned is None else 1):
            port = free_port(self.host) if pinned is None else pinned
            self.port = port
            if self.config_file is None:
                self._write_config()
            self.process = subprocess.Popen(
                [self.binary, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C in the test runner must not reach it first
            )
            if self.wait_listening(port, timeout_s):
                return self
            self.kill()
        raise BrokerError(
            f"mosquitto did not start listening on {self.host}:{self.port}; see {self.log_path}:\n{self.log_tail()}"
        )

    def wait_listening(self, port: int, timeout_s: float = 10.0) -> bool:
        """True once ``port`` accepts connections; False if the broker exits first or time runs out.

        start() waits for the main listener only. A config with more listeners must wait for
        each: Mosquitto exits when one cannot bind (another process took the port meanwhile)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, port), timeout=0.2):
                    return True
            except OSError:
                time.sleep(0.02)
        return False

    def stop(self, timeout_s: float = 10.0) -> None:
        """Clean stop: Mosquitto writes its persistence file on SIGTERM."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: what a crash or power cut does to the broker (unsaved state is lost)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self, *, hard: bool = False, timeout_s: float = 10.0) -> Mosquitto:
        """Stop (or kill, when ``hard``) and start again on the same port and persistence."""
        (self.kill if hard else self.stop)()
        deadline = time.monotonic() + timeout_s
        while True:  # the port can linger briefly after a kill
            try:
                return self.start(timeout_s=max(1.0, deadline - time.monotonic()))
            except BrokerError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def cleanup(self) -> None:
        self.kill()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m broker.launcher", description="Run a private Mosquitto until Ctrl-C."
    )
    parser.add_argument("--port", type=int, help="port (default: a free one)")
    parser.add_argument("--dir", type=Path, help="working directory (default: a new temp dir)")
    args = parser.parse_args(argv)
    broker = Mosquitto(args.dir, port=args.port).start()
    print(f"mosquitto listening on {broker.host}:{broker.port} (dir {broker.workdir})", flush=True)
    try:
        signals = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        signal.sigwait(signals)
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
