"""Read systemd unit files, and run a service the way systemd would for the parts tests need.

There is no systemd (PID 1) in a test container, so ``ServiceRun`` does by hand what the
manager does for a ``Type=notify`` service: bind the notify socket, pass NOTIFY_SOCKET,
WATCHDOG_USEC (from WatchdogSec=) and WATCHDOG_PID, apply UMask=, NoNewPrivileges= and
MemoryDenyWriteExecute= (the kernel's PR_SET_MDWE, same rule as systemd's seccomp one),
exec the unit's own ExecStart= in the main process, run ExecReload= with $MAINPID, stop with
KillSignal= and read who sent each notification (SCM_CREDENTIALS, as NotifyAccess=main does).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.agent_process import REPO_ROOT

UNIT_DIR = REPO_ROOT / "systemd"
VENV_BIN = Path(sys.executable).parent


class Unit:
    """A unit file as {section: {key: [values in order]}} (keys may repeat, e.g. DeviceAllow=)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sections: dict[str, dict[str, list[str]]] = {}
        section: dict[str, list[str]] | None = None
        pending = ""
        for raw in path.read_text().splitlines():
            line = pending + raw.strip()
            pending = ""
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                section = self.sections.setdefault(line[1:-1], {})
                continue
            assert section is not None, f"{path}: key outside a section: {line}"
            key, _, value = line.partition("=")
            section.setdefault(key.strip(), []).append(value.strip())

    def get(self, key: str, default: str | None = None, section: str = "Service") -> str:
        values = self.sections.get(section, {}).get(key)
        if not values:
            if default is None:
                raise KeyError(f"{self.path.name}: no {key}= in [{section}]")
            return default
        return values[-1]

    def all(self, key: str, section: str = "Service") -> list[str]:
        return self.sections.get(section, {}).get(key, [])

    def seconds(self, key: str) -> float:
        value = self.get(key)
        assert value.isdigit(), f"{self.path.name}: {key}={value}: this emulation reads plain seconds only"
        return float(value)

    def yes(self, key: str) -> bool:
        return self.get(key, "no").lower() in ("yes", "true", "1", "on")


def unit(name: str) -> Unit:
    return Unit(UNIT_DIR / name)


def venv_binary(name: str) -> Path:
    """The installed console script standing in for /usr/bin/<name>."""
    path = VENV_BIN / name
    if not path.exists():
        found = shutil.which(name)
        assert found, f"{name} is not installed: run `pip install -e .` (make setup)"
        path = Path(found)
    return path


def ensure_tool(name: str, package: str = "systemd") -> str:
    """The path of ``name``; installs the Debian package as root when it is missing."""
    found = shutil.which(name)
    if found:
        return found
    how = f"install it with `apt-get install {package}` (Debian/Ubuntu package) and re-run"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail(f"{name} is missing and the tests can only install it as root with apt-get: {how}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:  # stale package lists on a fresh container
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True, timeout=900)
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} still missing after `{' '.join(install)}` ({result.stderr[-500:]}): {how}")
    return found


# Runs in the service's main process before it becomes ExecStart: the per-process parts of
# the unit's sandbox that can be reproduced without systemd. Then exec, so the pid stays.
_PRELUDE = r"""
import ctypes, json, os, sys
spec = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
if spec["umask"] is not None:
    os.umask(spec["umask"])
if spec["no_new_privs"] and libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
    sys.exit("prelude: PR_SET_NO_NEW_PRIVS failed")
mdwe = "off"
if spec["mdwe"]:
    # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN (Linux >= 6.3)
    mdwe = "on" if libc.prctl(65, 1, 0, 0, 0) == 0 else "unsupported"
print(f"prelude: umask={spec['umask']} no_new_privs={spec['no_new_privs']} mdwe={mdwe}", file=sys.stderr, flush=True)
os.environ["WATCHDOG_PID"] = str(os.getpid())  # systemd sets it to the main pid
os.execv(spec["argv"][0], spec["argv"])
"""


@dataclass
class Notification:
    pid: int
    fields: dict[str, str]
    at: float


@dataclass
class ServiceRun:
    unit: Unit
    workdir: Path
    argv_map: dict[str, str]  # ExecStart words to replace (binary and config paths)
    notifications: list[Notification] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.notify_path = self.workdir / "notify.sock"
        self.log_path = self.workdir / "service.log"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(self.notify_path))
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self._queue: queue.Queue[Notification] = queue.Queue()
        threading.Thread(target=self._read_notifications, name="notify-socket", daemon=True).start()

    @property
    def argv(self) -> list[str]:
        words = shlex.split(self.unit.get("ExecStart"))
        return [self.argv_map.get(word, word) for word in words]

    @property
    def watchdog_usec(self) -> int:
        return int(self.unit.seconds("WatchdogSec") * 1_000_000)

    def start(self) -> ServiceRun:
        umask = self.unit.get("UMask", "")
        spec = {
            "argv": self.argv,
            "umask": int(umask, 8) if umask else None,
            "no_new_privs": self.unit.yes("NoNewPrivileges"),
            "mdwe": self.unit.yes("MemoryDenyWriteExecute"),
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_"))}
        for assignment in self.unit.all("Environment"):
            for word in shlex.split(assignment):
                key, _, value = word.partition("=")
                env[key] = value
        env.update(NOTIFY_SOCKET=str(self.notify_path), WATCHDOG_USEC=str(self.watchdog_usec), PYTHONUNBUFFERED="1")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _PRELUDE, json.dumps(spec)],
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    @property
    def main_pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _read_notifications(self) -> None:
        """Stamp each datagram as it arrives (a late reader must not shift watchdog timings)."""
        size = struct.calcsize("3i")
        while True:
            try:
                data, ancdata, _flags, _addr = self._sock.recvmsg(4096, socket.CMSG_SPACE(size))
            except OSError:
                return  # socket closed
            at = time.monotonic()
            pid = -1
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", payload[:size])[0]
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            note = Notification(pid, fields, at)
            self.notifications.append(note)
            self._queue.put(note)

    def wait_for(self, key: str, timeout_s: float) -> Notification:
        """The next notification carrying ``key`` (earlier ones are skipped but kept in .notifications)."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no {key} within {timeout_s} s; got {[n.fields for n in self.notifications]}\n{self.log()}"
                )
            try:
                note = self._queue.get(timeout=min(remaining, 0.2))
            except queue.Empty:
                if self.process is not None and self.process.poll() is not None and self._queue.empty():
                    raise AssertionError(
                        f"service exited with {self.process.returncode} before {key}:\n{self.log()}"
                    ) from None
                continue
            if key in note.fields:
                return note

    def reload(self) -> subprocess.CompletedProcess[str]:
        """ExecReload= with $MAINPID (and ${MAINPID}) replaced, as systemctl reload runs it."""
        command = (
            self.unit.get("ExecReload")
            .replace("${MAINPID}", str(self.main_pid))
            .replace("$MAINPID", str(self.main_pid))
        )
        return subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=10)

    def stop(self) -> tuple[int, float]:
        """KillSignal= (SIGTERM by default); returns (exit code, seconds taken) within TimeoutStopSec=."""
        assert self.process is not None
        sig = getattr(signal, self.unit.get("KillSignal", "SIGTERM"))
        started = time.monotonic()
        self.process.send_signal(sig)
        code = self.process.wait(self.unit.seconds("TimeoutStopSec"))
        return code, time.monotonic() - started

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the reader thread
        self._sock.close()
