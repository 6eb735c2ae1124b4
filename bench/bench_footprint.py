"""Agent footprint: start-to-ready time and idle memory of a real ``kassa-agent`` process.

The agent runs as on a terminal: connected to a broker, a (virtual) receipt printer with its
cash drawer and a serial scanner bound, the POS API listening, a roster and a lease held.
"Ready" is the moment systemd would see: READY=1 on the sd_notify socket, timed from the
fork. Idle memory is sampled after the agent has sat idle for `--idle` seconds: VmRSS (what
the target is about), and PSS/USS from smaps_rollup (shared libraries counted fairly / not).

Baselines, measured in the same run: a bare interpreter (`python -c pass`) started the same way,
its exit time and its RSS; and the library floor (bench/footprint_floor.py): the RSS of an
interpreter that only uses the agent's libraries, stage by stage, so that what kassa itself costs
is the difference. Targets (issue #10): idle RSS <= 60 MB, ready <= 1.5 s.

    python -m bench.bench_footprint [--runs 5] [--idle 10]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._stats import save
from broker.launcher import Mosquitto
from drivers.sim.printer import VirtualPrinter
from drivers.sim.scanner import VirtualSerialScanner
from tests.posapi.support import push_roster_and_lease, terminal_config, wait_for
from tests.support.agent_process import REPO_ROOT, AgentProcess
from tests.support.mqtt_peer import MqttPeer

TARGET_RSS_MB = 60.0
TARGET_READY_S = 1.5
MIB = 1024 * 1024


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS from status; Pss and the private (unshared) pages from smaps_rollup."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            fields["rss"] = int(line.split()[1])
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Pss", "Private_Clean", "Private_Dirty"):
            fields[key.lower()] = int(rest.split()[0])
    fields["uss"] = fields.pop("private_clean", 0) + fields.pop("private_dirty", 0)
    return fields


def notify_socket(directory: Path) -> tuple[socket.socket, Path]:
    path = directory / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(30)
    return sock, path


def wait_ready(sock: socket.socket) -> None:
    while True:
        message = sock.recv(4096).decode()
        if "READY=1" in message.split("\n"):
            return


def baseline(workdir: Path) -> dict[str, float]:
    """A bare interpreter: how long it takes to start and exit, and its RSS at exit."""
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import pathlib,re;print(re.search(r'VmRSS:\\s+(\\d+)', pathlib.Path('/proc/self/status').read_text())[1])",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=workdir,
    )
    return {"start_s": time.perf_counter() - started, "rss_kib": int(result.stdout)}


def library_floor() -> dict[str, int]:
    """RSS in KiB after each library stage of footprint_floor.py, in its own interpreter."""
    result = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("footprint_floor.py"))],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
    )
    return json.loads(result.stdout.splitlines()[-1])


def cpu_s(pid: int) -> float:
    """User + system CPU the process has used: unlike wall time, not stretched by a busy machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(
    workdir: Path,
    broker: Mosquitto,
    printer: VirtualPrinter,
    scanner: VirtualSerialScanner,
    peer: MqttPeer,
    idle_s: float,
) -> dict[str, float]:
    """One start of the agent in `workdir` (the first makes its state; later ones are restarts)."""
    config = terminal_config(workdir / "agent", broker, printer, scanner)
    sock, path = notify_socket(workdir)
    agent = AgentProcess(config, env={"NOTIFY_SOCKET": str(path)})
    try:
        started = time.perf_counter()
        agent.start(wait=False)
        wait_ready(sock)
        ready_s = time.perf_counter() - started
        assert agent.process is not None
        ready_cpu_s = cpu_s(agent.process.pid)
        wait_for(lambda: agent.client().call("status")["components"]["cloud"]["connected"], 20, "broker connection")
        push_roster_and_lease(peer, workdir / "agent" / "state")
        wait_for(lambda: agent.client().call("licence.status")["held"], 20, "lease")
        time.sleep(idle_s)
        memory = memory_kib(agent.process.pid)
        return {"ready_s": ready_s, "ready_cpu_s": ready_cpu_s, **{f"{k}_kib": v for k, v in memory.items()}}
    finally:
        agent.stop()
        sock.close()
        path.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds idle before memory is sampled")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="kassa-bench-footprint-", dir="/var/tmp"))
    broker = Mosquitto(workdir / "mosquitto").start()
    printer = VirtualPrinter().start()
    scanner = VirtualSerialScanner().start()
    peer = MqttPeer(broker, "bench-cloud")
    runs: list[dict[str, float]] = []
    bases: list[dict[str, float]] = []
    try:
        for index in range(args.runs):
            bases.append(baseline(REPO_ROOT))
            run = one_run(workdir, broker, printer, scanner, peer, args.idle)
            runs.append(run)
            kind = "first start" if index == 0 else "restart"
            print(
                f"  run {index + 1}/{args.runs} ({kind}): "
                f"ready {run['ready_s']:.2f} s ({run['ready_cpu_s']:.2f} s CPU), RSS {run['rss_kib'] / 1024:.1f} MiB "
                f"(PSS {run['pss_kib'] / 1024:.1f}, USS {run['uss_kib'] / 1024:.1f})",
                flush=True,
            )
    finally:
        peer.close()
        scanner.stop()
        printer.stop()
        broker.kill()

    def median(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(row[key] for row in rows)

    floors = [library_floor() for _ in range(3)]
    floor_stages = {stage: statistics.median(floor[stage] for floor in floors) for stage in floors[0]}
    print("library floor (RSS after each stage, median of 3):")
    for stage, kib in floor_stages.items():
        print(f"  {stage:<32} {kib / 1024:6.1f} MiB")

    restarts = runs[1:] or runs
    ready, rss_mb = median(restarts, "ready_s"), median(runs, "rss_kib") * 1024 / 1e6
    base_start, base_rss_mb = median(bases, "start_s"), median(bases, "rss_kib") * 1024 / 1e6
    print(
        f"ready (READY=1 from fork): first start {runs[0]['ready_s']:.2f} s ({runs[0]['ready_cpu_s']:.2f} s CPU); "
        f"restarts median {ready:.2f} s ({median(restarts, 'ready_cpu_s'):.2f} s CPU), "
        f"max {max(r['ready_s'] for r in restarts):.2f} s; "
        f"bare interpreter {base_start * 1000:.0f} ms ({ready / base_start:.1f}x)  target <= {TARGET_READY_S} s"
    )
    print(
        f"idle RSS: median {rss_mb:.1f} MB ({rss_mb * 1e6 / MIB:.1f} MiB), "
        f"max {max(r['rss_kib'] for r in runs) * 1024 / 1e6:.1f} MB; "
        f"PSS {median(runs, 'pss_kib') * 1024 / 1e6:.1f} MB, USS {median(runs, 'uss_kib') * 1024 / 1e6:.1f} MB; "
        f"bare interpreter {base_rss_mb:.1f} MB  target <= {TARGET_RSS_MB:.0f} MB"
    )
    floor_mb = list(floor_stages.values())[-1] * 1024 / 1e6
    print(f"library floor: {floor_mb:.1f} MB; kassa's own code and state: {rss_mb - floor_mb:.1f} MB")
    met = ready <= TARGET_READY_S and rss_mb <= TARGET_RSS_MB
    save(
        "footprint",
        {
            "runs": runs,
            "baseline": bases,
            "ready_s_median": ready,
            "first_start_ready_s": runs[0]["ready_s"],
            "rss_mb_median": rss_mb,
            "baseline_start_s_median": base_start,
            "baseline_rss_mb_median": base_rss_mb,
            "library_floor_kib": floor_stages,
            "library_floor_mb": floor_mb,
            "targets_met": met,
        },
    )
    print("targets met" if met else "TARGET MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
