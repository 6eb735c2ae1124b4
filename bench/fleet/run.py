"""The fleet run: orchestration and measurements (``python -m bench.fleet --devices 2000``).

Two parts, each on its own private Mosquitto:

baseline  N bare paho clients (bench/fleet/bare.py) in the same worker processes on the same
          loop driver: time to connect all; N*K sale-sized QoS 1 publishes through the broker
          to one bare subscriber; one roster-sized message pushed to each of the N; a broker
          kill + restart with paho's default reconnect schedule; memory.
fleet     N simulated terminals (bench/fleet/terminal.py) against the real `kassa-cloud
          worker`: connect all; licence binding; K sales each applied exactly once; a roster
          change fanned out to all N; S more sales each, the broker killed while they drain and
          restarted on the same port, the reconnect storm and the recovery of every sale; memory.

Each ratio in the report divides a fleet figure by the baseline figure of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._stats import machine
from bench.fleet.baseline import run_baseline
from bench.fleet.cloud import KEY_ID, FleetCloud
from bench.fleet.control import CpuMeter, Options, Run, Swarms, chunks, raise_fd_limit
from bench.fleet.measure import BROKER_EXTRA, _broker_rss, _count, _memory, _restart, connect_all, distribution
from bench.fleet.report import format_report, ratios, targets
from broker import contract as kc
from broker.launcher import Mosquitto, free_port
from tests.support.sales import make_sale


# ---------------------------------------------------------------------- the fleet
def run_fleet(
    run: Run, workdir: Path, store_root: Path, device_count: int, processes: int, cloud: FleetCloud
) -> dict[str, Any]:
    o = run.o
    out: dict[str, Any] = {}
    run.say(f"\n== fleet: {device_count} simulated terminals, {processes} worker processes ==")
    # As broker/production/mosquitto.conf: the cloud has a listener of its own (its connects
    # never queue behind the fleet's in one accept queue), and the state is saved every 60 s.
    cloud_port = free_port()
    broker = Mosquitto(workdir / "broker", extra_config=f"listener {cloud_port} 127.0.0.1\n{BROKER_EXTRA}").start()
    broker_idle = _broker_rss(broker)
    swarms: Swarms | None = None
    try:
        started = time.monotonic()
        cloud.start_worker(broker.host, cloud_port, log_level=o.cloud_log_level)
        cloud.wait_worker_subscribed()
        run.wait(
            "cloud publishes roster v1", lambda: _left(cloud.pending_docs("cashiers"), "roster documents to publish")
        )
        run.say(f"  kassa-cloud worker up and rosters retained ({time.monotonic() - started:.1f} s)")

        devices = sorted(cloud.licence_keys)
        parts = chunks(devices, processes)
        swarms = Swarms(len(parts), workdir, o.nice)
        swarms.stats()  # every worker has imported everything
        mqtt = {
            "host": broker.host,
            "port": broker.port,
            "ack_timeout_s": o.ack_timeout_s,
            "reconnect_max_s": o.reconnect_max_s,
        }
        started = time.monotonic()
        swarms.call_each(
            "build",
            [
                {"devices": part, "state_root": str(store_root), "mqtt": mqtt, "cloud_keys": {KEY_ID: cloud.public_key}}
                for part in parts
            ],
        )
        run.wait("build", lambda: _built(swarms.stats(), device_count), every_s=2.0)
        out["build_s"] = round(time.monotonic() - started, 1)
        live = swarms
        meter = CpuMeter(
            lambda: {
                "terminals": live.pids(),
                "broker": [broker.process.pid] if broker.process else [],
                "cloud": [cloud.worker_pid()] if cloud.worker_pid() else [],
                "orchestrator": [os.getpid()],
            }
        )
        cpu: dict[str, Any] = {}
        out["cpu_s"] = cpu

        # 1. connect all at once
        snap, t0 = meter.snapshot(), time.monotonic()
        connect_all(run, swarms, "connect", device_count, out)
        broker_connected = _broker_rss(broker)
        run.wait("roster v1 from the retained documents", lambda: _roster_at_least(swarms.stats(), 1, device_count))
        cpu["connect"] = meter.since(snap, t0)

        # 2. licences: every terminal sends a BindRequest; the cloud signs and pushes a lease
        snap, t0 = meter.snapshot(), time.monotonic()
        swarms.call_each("bind", [{"keys": {d: cloud.licence_keys[d] for d in part}} for part in parts])
        run.wait("licence", lambda: _count(swarms.stats()["licensed"], device_count, "licensed"))
        licensed = [c["licensed_at"] - t0 for c in swarms.times()]
        out["licence_all_s"] = round(max(licensed), 3)
        out["licence"] = distribution(licensed)
        cpu["licence"] = meter.since(snap, t0)

        # 3. sales: K per terminal, until the cloud has applied every one
        total = device_count * o.sales
        before = cloud.sales()
        snap, t0 = meter.snapshot(), time.monotonic()
        swarms.call_all("sell", count=o.sales)
        done_at = run.wait("sales", lambda: _sales_line(cloud.sale_rows(), total, swarms), poll_s=0.1)
        cpu["sales"] = meter.since(snap, t0)
        per_sale = {name: round(used * 1000 / total, 3) for name, used in cpu["sales"].items() if name != "wall"}
        first = min(c["first_sale_at"] for c in swarms.times() if c["first_sale_at"] is not None)
        counted = cloud.sales()
        out["sales"] = {
            "count": total,
            "seconds": round(done_at - first, 3),
            "sales_per_s": round(total / (done_at - first), 1),
            "cloud": vars(counted),
            "before": vars(before),
            "cpu_ms_per_sale": per_sale,
            "exact": counted.rows == counted.distinct == counted.ledger == total
            and counted.devices == device_count
            and counted.per_device_min == counted.per_device_max == o.sales,
        }
        run.say(
            f"  cloud count: {counted.rows} rows, {counted.distinct} distinct sale ids, "
            f"{counted.ledger} in the ledger, "
            f"{counted.devices} devices with {counted.per_device_min}-{counted.per_device_max} each: "
            f"{'exactly once' if out['sales']['exact'] else 'NOT EXACT'}"
        )

        # 4. roster fan-out: rename a cashier in the cloud; every terminal gets a new roster version
        snap, t0 = meter.snapshot(), time.monotonic()
        out["roster"] = _fanout(run, cloud, swarms, device_count)
        cpu["roster"] = meter.since(snap, t0)

        # 5. broker restart while the terminals sell: some sales are in flight, some committed offline
        storm_total = total + device_count * o.storm_sales
        attempts_before = sum(c["attempts"] for c in swarms.times())
        snap, t0 = meter.snapshot(), time.monotonic()
        swarms.call_all("sell", count=o.storm_sales)
        time.sleep(0.05)
        in_cloud = cloud.sale_rows()
        restart = _restart(run, broker, swarms, device_count)
        restart["in_cloud_at_kill"] = in_cloud - total
        run.say(f"  {in_cloud - total} of the {storm_total - total} new sales were applied when the broker went down")
        clients = swarms.times()
        restart["connect_attempts"] = sum(c["attempts"] for c in clients) - attempts_before
        recovered_at = run.wait("recovery", lambda: _sales_line(cloud.sale_rows(), storm_total, swarms), poll_s=0.2)
        cpu["restart"] = meter.since(snap, t0)
        counted = cloud.sales()
        restart["all_sales_applied_s"] = round(recovered_at - restart.pop("killed_at"), 3)
        restart["cloud"] = vars(counted)
        restart["exact"] = (
            counted.rows == counted.distinct == counted.ledger == storm_total
            and counted.per_device_min == counted.per_device_max == o.sales + o.storm_sales
        )
        out["restart"] = restart
        run.say(
            f"  cloud count after the restart: {counted.rows} rows, {counted.distinct} distinct, "
            f"{counted.ledger} in the ledger: "
            f"{'exactly once' if restart['exact'] else 'NOT EXACT'}"
        )

        # 6. the same roster fan-out on the restarted broker
        snap, t0 = meter.snapshot(), time.monotonic()
        out["roster_after_restart"] = _fanout(run, cloud, swarms, device_count)
        cpu["roster_after_restart"] = meter.since(snap, t0)

        # 7. memory, then everything acked
        stats = swarms.stats()
        out["memory"] = _memory(stats, broker, broker_idle, device_count)
        out["memory"]["broker_per_connection_kb"] = round((broker_connected - broker_idle) / device_count / 1024, 1)
        out["refused_sales"] = stats["refused"]
        out["resent"] = stats["resent"]
        # every outbox empties: each sale, report and reply acked by the cloud, none left behind
        run.wait(
            "outboxes",
            lambda: _left(sum(r["depth"] for r in live.call_all("outbox")), "outbox rows not acked yet"),
            timeout_s=o.ack_timeout_s + 60,
            poll_s=1.0,
        )
        out["outbox_left"] = 0
    finally:
        if swarms is not None:
            swarms.stop()
        cloud.stop_worker()
        broker.cleanup()
    return out


def _left(count: int, what: str) -> tuple[bool, str]:
    return count == 0, f"{count} {what}"


def _built(stats: dict[str, Any], count: int) -> tuple[bool, str]:
    return stats["built"] >= count and "build" not in stats["busy"], f"{stats['built']}/{count} built"


def _roster_at_least(stats: dict[str, Any], version: int, count: int) -> tuple[bool, str]:
    have = sum(n for v, n in stats["roster_versions"].items() if v >= version)
    return have >= count, f"{have}/{count} on roster v{version} or newer"


def _sales_line(in_cloud: int, total: int, swarms: Swarms) -> tuple[bool, Callable[[], str]]:
    def line() -> str:
        stats = swarms.stats()
        return f"{stats['sold']} committed, {stats['acked']} messages acked, {in_cloud}/{total} applied in the cloud"

    return in_cloud >= total, line


def _fanout(run: Run, cloud: FleetCloud, swarms: Swarms, count: int) -> dict[str, Any]:
    before = cloud.doc_versions("cashiers")
    t0, wall0 = time.monotonic(), time.time()
    cloud.change_roster()
    committed = time.monotonic()
    target = cloud.doc_versions("cashiers")
    changed = sum(target[d] > before.get(d, 0) for d in target)
    lowest = min(target.values())
    run.say(f"  roster change committed in {committed - t0:.2f} s: {changed} devices get a new version")
    run.wait("roster", lambda: _roster_target(swarms, target, lowest, count), poll_s=0.1)
    reached, delivered = [], []
    for client in swarms.times():
        wanted = target[client["id"]]
        times = [t for version, t in client["rosters"] if version >= wanted and t >= t0]
        reached.append(min(times) - t0)
        came = [t for t in client["roster_arrivals"] if t >= t0]
        if came:
            delivered.append(min(came) - t0)
    published = [at - wall0 for at in cloud.published_at("cashiers").values() if at >= wall0]
    return {
        "devices": changed,
        "commit_s": round(committed - t0, 3),
        "fanout_s": round(max(reached), 3),
        "arrival": distribution(reached),  # the terminal has parsed and adopted the new roster
        "delivered": distribution(delivered),  # the message came off the terminal's socket
        "published": distribution(published),
    }  # the publisher recorded the broker's PUBACK


def _roster_target(swarms: Swarms, target: dict[str, int], lowest: int, count: int) -> tuple[bool, str]:
    stats = swarms.stats()
    have = sum(n for v, n in stats["roster_versions"].items() if v >= lowest)
    if have < count:
        return False, f"{have}/{count} on the new roster"
    # every device has reached at least the lowest new version; check each against its own
    reached = sum(1 for c in swarms.times() if any(v >= target[c["id"]] for v, _t in c["rosters"]))
    return reached >= count, f"{reached}/{count} on the new roster"


# ---------------------------------------------------------------------- main
def run(options: Options) -> dict[str, Any]:
    o = options
    fds = raise_fd_limit()
    own_workdir = o.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="kassa-fleet-")) if o.workdir is None else o.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    shm = Path("/dev/shm")
    if o.store_dir is not None:
        store_root = o.store_dir
    elif shm.is_dir():
        store_root = Path(tempfile.mkdtemp(prefix="kassa-fleet-stores-", dir=shm))
    else:
        store_root = workdir / "terminals"
    store_root.mkdir(parents=True, exist_ok=True)
    processes = max(1, -(-o.devices // o.per_process))
    r = Run(o)
    r.result.update(
        {
            "machine": machine(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "fd_limit": fds,
            "processes": processes,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "workdir": str(workdir),
            "store_root": str(store_root),
        }
    )
    r.say(
        f"kassa fleet: {o.devices} terminals, {o.sales} sales each (+{o.storm_sales} through the restart), "
        f"{processes} worker processes, work dir {workdir}, terminal stores in {store_root}"
    )
    cloud: FleetCloud | None = None
    try:
        device_ids = [f"fleet-{i:05d}" for i in range(o.devices)]
        r.say("\n== cloud set-up ==")
        cloud = FleetCloud.prepare(workdir / "cloud", o.database_url, device_ids, o.cashiers, r.say)
        r.result["database"] = cloud.engine.dialect.name
        roster_payload = cloud.roster_payload(device_ids[0])
        sale_payload = kc.draft_up(
            make_sale(1), device_id=device_ids[0], boot_id=kc.uuid7(), clock_trusted=True
        ).payload(1)
        r.result["payload_bytes"] = {"sale": len(sale_payload), "roster": len(roster_payload)}
        if o.baseline:
            r.result["baseline"] = run_baseline(r, workdir, o.devices, processes, sale_payload, roster_payload)
        r.result["fleet"] = run_fleet(r, workdir, store_root, o.devices, processes, cloud)
        r.result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        r.result["ratios"] = ratios(r.result)
        r.result["targets"] = targets(r.result, o.devices)
    finally:
        if cloud is not None:
            cloud.close()
        if not o.keep:
            if own_workdir:
                shutil.rmtree(workdir, ignore_errors=True)
            if o.store_dir is None:
                shutil.rmtree(store_root, ignore_errors=True)
    return r.result


def parse_args(argv: list[str] | None = None) -> tuple[Options, Path | None]:
    p = argparse.ArgumentParser(
        prog="python -m bench.fleet", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--devices", type=int, default=2000, help="simulated terminals (default 2000)")
    p.add_argument("--per-process", type=int, default=500, help="terminals per worker process (default 500)")
    p.add_argument("--sales", type=int, default=10, help="sales per terminal in the measured round (default 10)")
    p.add_argument(
        "--storm-sales", type=int, default=2, help="sales per terminal draining when the broker is killed (default 2)"
    )
    p.add_argument("--cashiers", type=int, default=20, help="cashiers on every roster (default 20)")
    p.add_argument(
        "--restart", choices=["kill", "term"], default="kill", help="kill: SIGKILL (a crash); term: a clean stop"
    )
    p.add_argument(
        "--ack-timeout", type=float, default=30.0, help="the terminals' mqtt.ack_timeout_s (default 30, the agent's)"
    )
    p.add_argument(
        "--reconnect-max",
        type=float,
        default=30.0,
        help="the terminals' mqtt.reconnect_max_s (default 30, the agent's)",
    )
    p.add_argument("--no-baseline", action="store_true", help="skip the bare-paho baseline")
    p.add_argument("--database-url", help="cloud database (default: a SQLite file in the work dir)")
    p.add_argument(
        "--store-dir", type=Path, help="directory for the terminals' stores (default: a tmpfs dir under /dev/shm)"
    )
    p.add_argument("--workdir", type=Path, help="work directory (default: a new temp dir, removed afterwards)")
    p.add_argument("--keep", action="store_true", help="keep the work directory and the stores")
    p.add_argument("--timeout", type=float, default=300.0, help="upper bound of each waiting phase in seconds")
    p.add_argument(
        "--nice",
        type=int,
        default=10,
        help="niceness of the simulating worker processes (default 10: the "
        "broker and the cloud, which have machines of their own in the field, come first; 0: equal)",
    )
    p.add_argument("--cloud-log-level", default="info", choices=["debug", "info"], help="kassa-cloud worker log level")
    p.add_argument("--json", type=Path, help="also write the result as JSON to this file")
    a = p.parse_args(argv)
    options = Options(
        devices=a.devices,
        per_process=a.per_process,
        sales=a.sales,
        storm_sales=a.storm_sales,
        cashiers=a.cashiers,
        restart=a.restart,
        ack_timeout_s=a.ack_timeout,
        reconnect_max_s=a.reconnect_max,
        baseline=not a.no_baseline,
        database_url=a.database_url,
        store_dir=a.store_dir,
        workdir=a.workdir,
        keep=a.keep,
        timeout_s=a.timeout,
        cloud_log_level=a.cloud_log_level,
        nice=a.nice,
    )
    return options, a.json


def main(argv: list[str] | None = None) -> int:
    options, json_path = parse_args(argv)
    result = run(options)
    print("\n" + format_report(result))
    text = json.dumps(result, indent=2, default=str)
    if json_path is not None:
        json_path.write_text(text)
        print(f"\nJSON written to {json_path}")
    else:
        print("\n" + text)
    return 0 if all(v for k, v in result["targets"].items() if isinstance(v, bool)) else 1


if __name__ == "__main__":
    sys.exit(main())
