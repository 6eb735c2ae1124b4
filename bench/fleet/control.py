"""Driving a run's processes: its options, progress log and waits, the worker swarms over their pipes, their CPU."""

from __future__ import annotations

import contextlib
import multiprocessing
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.fleet.swarm import cpu_seconds, worker_main


@dataclass
class Options:
    devices: int = 2000
    per_process: int = 500  # terminals per worker process
    sales: int = 10  # sales per terminal, measured round
    storm_sales: int = 2  # sales per terminal committed right before the broker is killed
    cashiers: int = 20  # roster size
    restart: str = "kill"  # "kill" (SIGKILL, like a crash) or "term" (clean stop, state saved)
    ack_timeout_s: float = 30.0  # the agent's mqtt.ack_timeout_s
    reconnect_max_s: float = 30.0  # the agent's mqtt.reconnect_max_s (default 30)
    baseline: bool = True
    database_url: str | None = None
    store_dir: Path | None = None  # where the terminals' stores go (default: tmpfs /dev/shm)
    workdir: Path | None = None
    keep: bool = False
    timeout_s: float = 300.0  # upper bound of each waiting phase
    quiet: bool = False
    cloud_log_level: str = "info"
    nice: int = 10  # CPU priority of the worker processes (see swarm.worker_main)


class SwarmError(RuntimeError):
    pass


class Swarms:
    """The worker processes (bench/fleet/swarm.py) and the pipe to each."""

    def __init__(self, count: int, logdir: Path, nice: int = 0) -> None:
        context = multiprocessing.get_context("spawn")
        self.conns: list[Any] = []
        self.processes: list[Any] = []
        self._next_id = 0
        for index in range(count):
            parent, child = context.Pipe()
            process = context.Process(
                target=worker_main,
                args=(child, index, str(logdir / f"swarm-{index}.log"), nice),
                name=f"fleet-swarm-{index}",
                daemon=True,
            )
            process.start()
            child.close()
            self.conns.append(parent)
            self.processes.append(process)

    def __len__(self) -> int:
        return len(self.conns)

    def call_each(self, cmd: str, args: list[dict[str, Any]], timeout_s: float = 120.0) -> list[dict[str, Any]]:
        # ``args`` may be shorter than the pool: chunks() can cut fewer parts than there are
        # workers, and the workers without a part are simply not asked.
        ids = []
        for conn, one in zip(self.conns, args, strict=False):
            self._next_id += 1
            conn.send({"id": self._next_id, "cmd": cmd, "args": one})
            ids.append(self._next_id)
        replies = []
        for index, (conn, wanted) in enumerate(zip(self.conns, ids, strict=False)):
            if not conn.poll(timeout_s):
                raise SwarmError(f"worker {index} did not answer {cmd!r} within {timeout_s} s")
            try:
                reply = conn.recv()
            except (EOFError, OSError) as exc:
                raise SwarmError(
                    f"worker {index} is gone (exit code {self.processes[index].exitcode}): {exc!r}"
                ) from None
            if reply.get("id") != wanted:
                raise SwarmError(f"worker {index} answered {reply.get('id')} to request {wanted}")
            if "error" in reply:
                raise SwarmError(f"worker {index} failed on {cmd!r}:\n{reply['error']}")
            replies.append(reply)
        return replies

    def call_all(self, cmd: str, **args: Any) -> list[dict[str, Any]]:
        return self.call_each(cmd, [args] * len(self.conns))

    def stats(self, since: float | None = None) -> dict[str, Any]:
        replies = self.call_all("stats", since=since)
        total: dict[str, Any] = {
            "rss": [r["rss"] for r in replies],
            "idle_rss": [r["idle_rss"] for r in replies],
            "busy": sorted({b for r in replies for b in r["busy"]}),
            "errors": [e for r in replies for e in r["errors"]],
            "roster_versions": {},
        }
        for key in (
            "built",
            "terminals",
            "connected",
            "connected_since",
            "licensed",
            "sold",
            "refused",
            "acked",
            "resent",
            "received",
        ):
            total[key] = sum(r[key] for r in replies)
        for reply in replies:
            for version, count in reply["roster_versions"].items():
                total["roster_versions"][int(version)] = total["roster_versions"].get(int(version), 0) + count
        if total["errors"]:
            raise SwarmError("a worker task failed:\n" + total["errors"][0])
        return total

    def times(self) -> list[dict[str, Any]]:
        return [client for reply in self.call_all("times") for client in reply["clients"]]

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def stop(self) -> None:
        with contextlib.suppress(SwarmError, OSError, EOFError):
            self.call_each("stop", [{}] * len(self.conns), timeout_s=60)
        for process in self.processes:
            process.join(30)
            if process.is_alive():
                process.kill()
                process.join(5)


# ---------------------------------------------------------------------- helpers
class CpuMeter:
    """CPU seconds used by groups of processes between two moments (a process that started
    in between, like a restarted broker, counts from zero)."""

    def __init__(self, groups: Callable[[], dict[str, list[int]]]) -> None:
        self.groups = groups

    def snapshot(self) -> dict[int, float]:
        return {pid: cpu_seconds(pid) for pids in self.groups().values() for pid in pids}

    def since(self, snapshot: dict[int, float], started: float) -> dict[str, float]:
        used = {
            name: round(sum(cpu_seconds(pid) - snapshot.get(pid, 0.0) for pid in pids), 2)
            for name, pids in self.groups().items()
        }
        used["wall"] = round(time.monotonic() - started, 2)
        return used


class Run:
    def __init__(self, options: Options) -> None:
        self.o = options
        self.result: dict[str, Any] = {
            "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(options).items()}
        }

    def say(self, text: str) -> None:
        if not self.o.quiet:
            print(text, flush=True)

    def wait(
        self,
        what: str,
        check: Callable[[], tuple[bool, Any]],
        timeout_s: float | None = None,
        every_s: float = 1.0,
        poll_s: float = 0.25,
    ) -> float:
        """Poll ``check`` until it says done; print its progress line every ``every_s``.
        Returns the monotonic time at which it was seen done."""
        started = time.monotonic()
        deadline = started + (timeout_s or self.o.timeout_s)
        next_line = started + every_s
        while True:
            done, line = check()
            now = time.monotonic()
            if done or now > deadline or now >= next_line:
                text = line() if callable(line) else line
                if now > deadline and not done:
                    raise TimeoutError(f"{what}: not done after {now - started:.0f} s: {text}")
                self.say(f"  {what}: {text} ({now - started:.1f} s)")
                if done:
                    return now
                next_line = now + every_s
            time.sleep(poll_s)


def chunks(items: list[str], parts: int) -> list[list[str]]:
    size = -(-len(items) // parts)
    return [items[i : i + size] for i in range(0, len(items), size)]


def raise_fd_limit() -> int:
    """Sockets and SQLite files of every client, and the broker's (it inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
