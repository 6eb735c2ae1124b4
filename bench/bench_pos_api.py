"""Sale commit through the POS API: HTTP request -> permission gate -> one store transaction
(sale, outbox row, print job) -> response. The receipt is queued, not printed (the virtual
printer is out of paper), and no cloud acks, so every row stays durable in the outbox.

Compared with a bare SQLite insert (WAL, synchronous=FULL) on the same filesystem,
measured in the same run, alternating so disk noise hits both alike. The agent is a real
``kassa-agent`` process; the client is httpx with keep-alive in this process.

    python -m bench.bench_pos_api [--n 2000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench._stats import BareInsert, save, summary_ms
from broker.launcher import Mosquitto
from drivers.sim.printer import VirtualPrinter
from tests.posapi.support import (
    SALE_TOTAL,
    Pos,
    api_url,
    create_pos_token,
    push_roster_and_lease,
    sale_body,
    terminal_config,
    wait_for,
)
from tests.support.agent_process import AgentProcess
from tests.support.mqtt_peer import MqttPeer

TARGET_P99_MS = 15.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="where the agent state and databases go (default: a temp dir under /var/tmp)",
    )
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="kassa-bench-pos-", dir=args.dir or "/var/tmp"))

    broker = Mosquitto(workdir / "mosquitto").start()
    printer = VirtualPrinter().start()
    printer.set_paper("out")  # receipts are queued durably, never printed during the run
    config = terminal_config(workdir / "agent", broker, printer, extra='[log]\nlevel = "warning"\n')
    agent = AgentProcess(config).start()
    peer = MqttPeer(broker, "bench-cloud")
    try:
        socket = agent.socket_path
        wait_for(lambda: agent.client().call("status")["components"]["cloud"]["connected"], 20, "broker connection")
        push_roster_and_lease(peer, workdir / "agent" / "state")
        wait_for(lambda: agent.client().call("licence.status")["held"], 20, "lease")
        pos = Pos(api_url(socket), create_pos_token(socket))
        pos.login("anna")

        bare = BareInsert(workdir / "bare.db", 1200)  # about a sale's outbox payload

        for _ in range(20):  # warm-up: connections, first page of the store
            pos.ok("POST", "/v1/sales", sale_body(cash=None, card=SALE_TOTAL))
        api_times: list[float] = []
        bare_times: list[float] = []
        for i in range(args.n):
            body = sale_body(cash=None, card=SALE_TOTAL, request_id=str(uuid.uuid4()))
            started = time.perf_counter()
            reply = pos.request("POST", "/v1/sales", body)
            api_times.append(time.perf_counter() - started)
            assert reply.status_code == 201, reply.text
            bare_times.append(bare.timed_insert())
            if i and i % 500 == 0:
                print(f"  {i}/{args.n}", file=sys.stderr)
        bare.close()
        status = agent.client().call("status")["components"]
        queued = status["hardware"]["printers"]["front"]["queued"]
        depth = status["cloud"]["outbox_depth"]
        pos.close()
    finally:
        peer.close()
        agent.stop()
        printer.stop()
        broker.kill()

    api, baseline = summary_ms(api_times), summary_ms(bare_times)
    print(f"sale commit through the POS API (HTTP, n={args.n}; receipt queued, row in the outbox)")
    print(f"  {'':<44}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"  {'POST /v1/sales -> 201':<44}{api['p50_ms']:>10.3f}{api['p99_ms']:>10.3f}")
    print(f"  {'bare SQLite insert, WAL + synchronous=FULL':<44}{baseline['p50_ms']:>10.3f}{baseline['p99_ms']:>10.3f}")
    print(
        f"  p99 target < {TARGET_P99_MS} ms: {'met' if api['p99_ms'] < TARGET_P99_MS else 'MISSED'}; "
        f"{queued} receipts queued, outbox depth {depth}"
    )
    save(
        "bench_pos_api",
        {
            "n": args.n,
            "pos_api_sale": api,
            "bare_sqlite_insert": baseline,
            "target_p99_ms": TARGET_P99_MS,
            "receipts_queued": queued,
            "outbox_depth": depth,
        },
    )
    return 0 if api["p99_ms"] < TARGET_P99_MS else 1


if __name__ == "__main__":
    sys.exit(main())
