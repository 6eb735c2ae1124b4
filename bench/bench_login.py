"""Cashier login cost: a whole offline login through the cashiers component (roster lookup,
lockout check, scrypt PIN verify in a worker thread, session + audit event committed) vs a
bare ``hashlib.scrypt`` call with the same (default) parameters, alternating, in one run.

The product asks for a login between 50 and 500 ms: slow enough against guessing PINs
from a stolen roster, quick enough for a queue at the till.

    python -m bench.bench_login [--n 20]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from agent import wiring
from bench._stats import save, summary_ms
from broker import contract as kc
from broker.contract.roster import DEFAULT_SCRYPT, hash_pin
from tests.support.agent_process import write_agent_config
from tests.support.inprocess import InProcessAgent

PIN = "4711"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="kassa-bench-login-", dir="/var/tmp"))
    agent = InProcessAgent(write_agent_config(workdir / "agent", device_id="bench-0001")).start()
    try:
        doc = {
            "cashiers": [
                {
                    "cashier_id": "anna",
                    "name": "Anna",
                    "operator_code": "1001",
                    "pin_hash": hash_pin(PIN),
                    "roles": ["cashier"],
                    "details": [],
                }
            ]
        }
        body = kc.StateDoc(domain=kc.StateDomain.CASHIERS, version=1, doc=doc, issued_at=datetime.now(UTC))
        agent.call(lambda: agent.cloud.inbound.handle_state(kc.down_message(body, device_id="bench-0001")))
        cashiers = agent.agent.component(wiring.CASHIERS)
        assert agent._loop is not None
        log_n, r, p = DEFAULT_SCRYPT
        salt = os.urandom(16)
        logins, bare = [], []
        for _ in range(args.n):
            started = time.perf_counter()
            asyncio.run_coroutine_threadsafe(cashiers.login("anna", PIN), agent._loop).result(30)
            logins.append(time.perf_counter() - started)
            started = time.perf_counter()
            hashlib.scrypt(
                PIN.encode(), salt=salt, n=1 << log_n, r=r, p=p, maxmem=256 * (1 << log_n) * r + (1 << 20), dklen=32
            )
            bare.append(time.perf_counter() - started)
    finally:
        agent.stop()
    login_ms, bare_ms = summary_ms(logins), summary_ms(bare)
    ratio = login_ms["p50_ms"] / bare_ms["p50_ms"]
    within = 50 <= login_ms["p50_ms"] <= 500
    print(f"scrypt parameters: log2 N = {log_n}, r = {r}, p = {p}; {args.n} logins")
    print(f"{'':<34} {'p50':>10} {'p99':>10}")
    print(f"{'bare hashlib.scrypt (baseline)':<34} {bare_ms['p50_ms']:>8.1f} ms {bare_ms['p99_ms']:>8.1f} ms")
    print(f"{'login through the component':<34} {login_ms['p50_ms']:>8.1f} ms {login_ms['p99_ms']:>8.1f} ms")
    print(f"ratio login / bare: {ratio:.2f}x; target 50-500 ms: {'met' if within else 'NOT met'}")
    save(
        "login",
        {
            "n": args.n,
            "scrypt": {"log_n": log_n, "r": r, "p": p},
            "login": login_ms,
            "bare_scrypt": bare_ms,
            "ratio_p50": round(ratio, 3),
            "target_met": within,
        },
    )
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
