"""Soak: a long run of steady sales with periodic faults, watching the agent's memory.

One real ``kassa-agent`` process with a virtual printer + drawer, a real Mosquitto, the cloud
(SQLite on disk) with its ingest worker as a separate process, and a busy till selling through
the POS API (about 3 sales/s, cash and card, a refund now and then, an X report a minute).
Every ~75 s the next fault of a rotation: broker killed and restarted, ingest worker SIGKILLed
and restarted, printer out of paper for 20 s, printer offline for 20 s (silent, then refusing).
The agent itself is never restarted: its RSS, threads and open fds are sampled from /proc.

Pass: RSS at the end (median of the last minute) at most 10 % above RSS after the warm-up
(median of the first minute after it), the outbox back to zero, and the cloud holding exactly
the sales and refunds the agent confirmed (none lost, none doubled). Exit 1 otherwise.

    python -m bench.soak --minutes 20 [--warmup-min 3] [--rate 3] [--fault-every 75] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.soak_support import (
    Faults,
    Sampler,
    Till,
    elapsed,
    fd_kinds,
    lighten_printer,
    median,
    proc_figures,
    smaps_rollup,
)
from broker.launcher import Mosquitto
from tests.faults.harness import SaleStream
from tests.posapi.support import DEVICE, wait_for
from tests.support.terminal import make_terminal

MAX_GROWTH_PCT = 10.0
WINDOW_S = 60.0  # the warm-up and end RSS figures are medians over this long


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="how long to sell (default 20)")
    parser.add_argument(
        "--warmup-min",
        type=float,
        default=None,
        help="warm-up before the RSS baseline (default 3; a third of a run under 10 min)",
    )
    parser.add_argument("--rate", type=float, default=3.0, help="sales per second, on average (default 3)")
    parser.add_argument(
        "--fault-every", type=float, default=75.0, help="seconds between faults, on average (default 75)"
    )
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds between RSS samples (default 5)")
    parser.add_argument(
        "--progress-every", type=float, default=60.0, help="seconds between progress lines (default 60)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON summary here")
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the run's files go (default: a temp dir under /var/tmp)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the run's directory even when the soak passes")
    parser.add_argument(
        "--agent-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the agent process only (e.g. a PYTHONPATH with a memory probe); repeatable",
    )
    args = parser.parse_args(argv)
    warmup_s = 60 * (
        args.warmup_min if args.warmup_min is not None else (3.0 if args.minutes >= 10 else args.minutes / 3)
    )
    run_s = 60 * args.minutes
    if run_s < warmup_s + 2 * WINDOW_S:
        parser.error(
            f"--minutes {args.minutes} leaves no room after a {warmup_s / 60:.1f} min warm-up "
            f"for two {WINDOW_S:.0f} s windows"
        )

    workdir = Path(tempfile.mkdtemp(prefix="kassa-soak-", dir=args.dir or "/var/tmp"))
    print(
        f"soak: {args.minutes:g} min, warm-up {warmup_s / 60:.1f} min, ~{args.rate:g} sales/s, "
        f"a fault every ~{args.fault_every:g} s; files in {workdir}",
        flush=True,
    )
    broker = Mosquitto(workdir / "mosquitto").start()
    agent_env = dict(item.split("=", 1) for item in args.agent_env)
    terminals = make_terminal(workdir, broker, with_worker=False, env=agent_env)
    summary: dict[str, Any] = {}
    try:
        terminal = next(terminals)
        terminal.cloud.start_worker_process("p1")
        terminal.ready_to_sell(lifetime_s=7 * 86400)
        lighten_printer(terminal)
        summary = soak(terminal, args, warmup_s, run_s)
    except Exception as exc:
        log_tail = "\n".join(terminal.process.log().splitlines()[-15:]) if "terminal" in locals() else ""
        summary = {
            "passed": False,
            "failures": [f"the soak broke off: {type(exc).__name__}: {exc}"],
            "agent_log_tail": log_tail,
        }
    finally:
        terminals.close()
        broker.stop()
    summary["dir"] = str(workdir)
    text = json.dumps(summary, indent=2)
    print(text, flush=True)
    if args.json is not None:
        args.json.write_text(text + "\n")
    if summary["passed"]:
        print(
            f"soak PASSED: RSS {summary['rss']['growth_pct']:+.1f} % after warm-up, "
            f"{summary['sales']['committed']} sales, outbox 0, cloud exact",
            flush=True,
        )
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        return 0
    print("soak FAILED: " + "; ".join(summary["failures"]) + f" (files kept in {workdir})", flush=True)
    return 1


def soak(terminal: Any, args: argparse.Namespace, warmup_s: float, run_s: float) -> dict[str, Any]:
    pid = terminal.process.process.pid
    start = time.monotonic()
    at_start = {**proc_figures(pid), "fd_kinds": fd_kinds(pid)}
    sampler = Sampler(terminal, start, args.sample_every).start()
    stream = SaleStream(terminal, cashier="ada")  # admin: sells, and refunds any sale
    till = Till(stream, rate=args.rate, start_t=start).start()
    faults = Faults(terminal, start, args.fault_every).start()
    after_warmup: dict[str, Any] = {}
    next_progress = args.progress_every
    try:
        while (now := time.monotonic() - start) < run_s:
            if terminal.process.process.poll() is not None:
                raise RuntimeError(
                    f"the agent process exited with {terminal.process.process.returncode} after {now:.0f} s"
                )
            if not after_warmup and now >= warmup_s:
                after_warmup = {**proc_figures(pid), "smaps": smaps_rollup(pid), "fd_kinds": fd_kinds(pid)}
            if now >= next_progress:
                progress(now, stream, till, sampler, faults)
                next_progress += args.progress_every
            time.sleep(min(1.0, run_s - now))
    finally:
        faults.stop()
        till.stop()
    selling_ended = elapsed(start)
    at_end_of_selling = {**proc_figures(pid), "smaps": smaps_rollup(pid)}
    print(f"[{selling_ended / 60:5.1f} min] selling stopped; settling", flush=True)

    failures: list[str] = []
    settle_began = time.monotonic()
    try:
        till.settle(120)
        stream.expect_cloud_exact(300)
        till.expect_cloud_refunds_exact(120)
        cloud_exact = True
    except (AssertionError, TimeoutError) as exc:
        cloud_exact = False
        failures.append(f"cloud not exact: {exc}")
    settle_s = round(time.monotonic() - settle_began, 1)
    try:
        wait_for(
            lambda: (
                terminal.process.client().call("status")["components"]["hardware"]["printers"]["front"]["queued"] == 0
            ),
            60,
            "print queue empty",
        )
    except TimeoutError as exc:
        failures.append(str(exc))
    sampler.stop()
    final = sampler.sample()
    at_end = {**proc_figures(pid), "fd_kinds": fd_kinds(pid)}
    components = terminal.process.client().call("status")["components"]
    alive = terminal.process.process.poll() is None and terminal.process.process.pid == pid

    baseline = median(sampler.rss_between(warmup_s, warmup_s + WINDOW_S))
    end = median(sampler.rss_between(selling_ended - WINDOW_S, selling_ended))
    peak = max(sampler.rss_between(warmup_s, selling_ended))
    growth = round(100 * (end - baseline) / baseline, 2)
    if growth > MAX_GROWTH_PCT:
        failures.append(
            f"RSS grew {growth:.1f} % after warm-up ({baseline / 1024:.1f} -> {end / 1024:.1f} MiB), "
            f"more than {MAX_GROWTH_PCT:g} %"
        )
    if final["outbox"] != 0:
        failures.append(f"outbox not back to zero: {final['outbox']}")
    if not alive:
        failures.append("the agent process died or was replaced during the soak")
    open_gaps = terminal.cloud.open_gaps(DEVICE)
    if open_gaps:
        failures.append(f"the cloud has {open_gaps} open sequence gaps for the device (messages it never got)")
    seq_reused = sum(
        path.read_text(errors="replace").count("reused sequence numbers")
        for path in terminal.cloud.workdir.glob("worker-*.log")
    )
    if faults.not_recovered:
        failures.append("faults not recovered from: " + "; ".join(faults.not_recovered))

    return {
        "passed": not failures,
        "failures": failures,
        "minutes": args.minutes,
        "warmup_min": round(warmup_s / 60, 2),
        "rate_per_s": args.rate,
        "sales": {
            "committed": len(stream.committed),
            "refused": dict(stream.refused),
            "uncertain_left": len(stream.uncertain),
            **till.latency(),
        },
        "refunds": {
            "committed": len(till.refunds),
            "refused": dict(till.refunds_refused),
            "uncertain_left": len(till.refunds_uncertain),
        },
        "x_reports": dict(till.x_reports),
        "faults": {"counts": dict(faults.counts), "not_recovered": faults.not_recovered, "log": faults.log},
        "rss_kib": {
            "start": at_start["VmRSS"],
            "warmup": baseline,
            "end": end,
            "max_after_warmup": peak,
            "after_settle": at_end["VmRSS"],
        },
        "rss": {
            "growth_pct": growth,
            "limit_pct": MAX_GROWTH_PCT,
            "warmup_mib": round(baseline / 1024, 1),
            "end_mib": round(end / 1024, 1),
            "max_mib": round(peak / 1024, 1),
        },
        "rss_anon_kib": {
            "start": at_start["RssAnon"],
            "warmup": after_warmup.get("RssAnon"),
            "end_of_selling": at_end_of_selling["RssAnon"],
        },
        "smaps_rollup_kib": {"after_warmup": after_warmup.get("smaps"), "end_of_selling": at_end_of_selling["smaps"]},
        "fds": {
            "start": at_start["fds"],
            "after_warmup": after_warmup.get("fds"),
            "end": at_end["fds"],
            "kinds": {
                "start": at_start["fd_kinds"],
                "after_warmup": after_warmup.get("fd_kinds"),
                "end": at_end["fd_kinds"],
            },
        },
        "threads": {
            "start": at_start["Threads"],
            "after_warmup": after_warmup.get("Threads"),
            "end": at_end["Threads"],
        },
        "outbox": {
            "end": final["outbox"],
            "max": max((s["outbox"] or 0) for s in sampler.samples),
            "rejected": components["cloud"].get("outbox_rejected"),
            "published": components["cloud"].get("published"),
            "resent": components["cloud"].get("resent"),
        },
        "cloud_exact": cloud_exact,
        "cloud_open_gaps": open_gaps,
        "cloud_seq_reused_warnings": seq_reused,
        "slow_sales_over_1s": {"count": len(till.slow), "first": till.slow[:20]},
        "settle_s": settle_s,
        "agent_alive": alive,
        "rss_series_mib": [
            [s["t"], round(s["VmRSS"] / 1024, 1)] for s in sampler.samples[:: max(1, len(sampler.samples) // 120)]
        ],
        "outbox_series": [[s["t"], s["outbox"]] for s in sampler.samples[:: max(1, len(sampler.samples) // 120)]],
    }


def progress(now: float, stream: SaleStream, till: Till, sampler: Sampler, faults: Faults) -> None:
    row = sampler.last()
    refused = sum(stream.refused.values())
    print(
        f"[{now / 60:5.1f} min] sales {len(stream.committed)} (refused {refused}, uncertain {len(stream.uncertain)}), "
        f"refunds {len(till.refunds)}, RSS {row['VmRSS'] / 1024:.1f} MiB, threads {row['Threads']}, fds {row['fds']}, "
        f"outbox {row['outbox']}, last fault {faults.last}",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
