"""Cost of the licence check before each sale: ``Licence.sale_verdict()`` on a real accepted lease.

Measured against two baselines in the same run, interleaved so machine noise hits all alike:
"clocks + dict" is the floor of any in-memory check (``time.time()``, ``time.monotonic()``
and one dict lookup); "SQLite row" reads the lease row from the agent store (what a check
that went to the database each time would cost at least, before any signature check).
Calls are timed in blocks of --block and divided, so the timer's own cost stays out.

    python -m bench.bench_lease [--n 100000] [--block 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.cloud.inbound import Inbound
from agent.cloud.port import CloudPort
from agent.config import load_config
from agent.licence.component import Licence
from bench._stats import percentile, save
from broker import contract as kc
from broker.contract import licence as kl
from broker.contract.signing import public_key_text
from tests.support.runtime import runtime_for

DEVICE = "bench-0001"
TARGET_MS = 0.2


def licensed_terminal(workdir: Path) -> Licence:
    cloud_key = Ed25519PrivateKey.generate()
    config_path = workdir / "agent.toml"
    config_path.write_text(
        f'device_id = "{DEVICE}"\n[paths]\nstate_dir = "{workdir / "state"}"\nrun_dir = "{workdir / "run"}"\n'
        f'[trust]\ncloud_keys = {{ "cloud-1" = "{public_key_text(cloud_key.public_key())}" }}\n'
    )
    config = load_config(config_path)
    runtime = runtime_for(config)
    cloud = CloudPort(Inbound(runtime.store, runtime.outbox, DEVICE))
    licence = Licence(runtime, cloud)
    licence.load()
    inbound = cloud.inbound
    now = int(time.time())
    claims = kl.LeaseClaims(
        licence_id="LIC-BENCH",
        company_id=1,
        device_id=DEVICE,
        device_key=licence.device_key_fingerprint,
        epoch=1,
        issued_at=now,
        expires_at=now + 7 * 86400,
        renew_after_s=3600,
    )
    doc = kc.StateDoc(
        domain=kc.StateDomain.LICENCE,
        version=1,
        doc={"leases": [kl.sign_lease(claims, cloud_key, "cloud-1")]},
        issued_at=datetime.now(UTC),
    )
    inbound.handle_state(kc.down_message(doc, device_id=DEVICE))
    if not licence.sale_verdict().ok:
        raise SystemExit(f"the bench lease was not accepted: {licence.sale_verdict()}")
    return licence


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000, help="calls of each kind")
    parser.add_argument("--block", type=int, default=100, help="calls per timed block")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="kassa-bench-lease-"))
    licence = licensed_terminal(workdir)
    reader = licence.store.read()
    table = {"LIC-BENCH": object()}
    verdict = licence.sale_verdict
    wall, mono = time.time, time.monotonic
    block = range(args.block)

    def floor() -> None:
        wall(), mono(), table.get("LIC-BENCH")

    def sqlite_row() -> None:
        reader.execute("SELECT epoch, token, state FROM licence_leases WHERE licence_id = ?", ("LIC-BENCH",)).fetchone()

    samples: dict[str, list[float]] = {"sale_verdict": [], "clocks + dict": [], "SQLite row": []}
    calls = {"sale_verdict": verdict, "clocks + dict": floor, "SQLite row": sqlite_row}
    for _ in range(max(1, args.n // args.block)):
        for name, call in calls.items():
            started = time.perf_counter()
            for _ in block:
                call()
            samples[name].append((time.perf_counter() - started) / args.block)
    licence.store.close()

    # microseconds: the calls are far below summary_ms's 0.1 us rounding
    stats = {
        name: {"p50_us": round(percentile(v, 50) * 1e6, 3), "p99_us": round(percentile(v, 99) * 1e6, 3)}
        for name, v in samples.items()
    }
    ours = stats["sale_verdict"]["p50_us"]
    print(f"licence check per sale (n={args.n} calls each, timed in blocks of {args.block}; one accepted lease)")
    print(f"  {'':<28}{'p50 us':>10}{'p99 us':>10}{'p50 ratio':>12}")
    for name, row in stats.items():
        print(f"  {name:<28}{row['p50_us']:>10.2f}{row['p99_us']:>10.2f}{row['p50_us'] / ours:>11.2f}x")
    verdict_text = "met" if ours <= TARGET_MS * 1000 else "MISSED"
    print(f"  target: sale_verdict p50 <= {TARGET_MS} ms -> {verdict_text} ({ours:.2f} us = {ours / 1000:.4f} ms)")
    path = save("lease", {"n": args.n, "block": args.block, "target_ms": TARGET_MS, "stats": stats})
    print(f"  saved {path}")
    return 0 if ours <= TARGET_MS * 1000 else 1


if __name__ == "__main__":
    sys.exit(main())
