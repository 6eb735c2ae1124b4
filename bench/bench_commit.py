"""Sale-sized commit latency: outbox enqueue in its own transaction vs a bare SQLite insert.

Both use the agent store's settings (WAL, synchronous=FULL) on the same filesystem,
measured in the same run, alternating so disk noise hits both alike. Two kassa figures:
"enqueue_one" is the whole call (serialising the sale body included); "transaction" is
BEGIN..COMMIT with the message drafted beforehand (`Outbox.draft`: everything but the
sequence number encoded), as the sale path does it, i.e. how long the delivery machinery
holds the store's write lock.

    python -m bench.bench_commit [--n 2000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from agent.cloud.outbox import Outbox
from agent.store import Store
from bench._stats import BareInsert, save, summary_ms
from broker import contract as kc
from broker.contract.examples import examples


def sample_sale() -> kc.Sale:
    sale = next(e.envelope.body for e in examples() if isinstance(e.envelope.body, kc.Sale))
    return sale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the databases go (default: a temp dir under /var/tmp)"
    )
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="kassa-bench-", dir=args.dir or "/var/tmp"))

    store = Store.open(workdir / "agent.db")
    outbox = Outbox(store, "bench-0001", kc.uuid7(), lambda: True)
    sale = sample_sale()
    payload_size = len(
        kc.encode(kc.up_message(sale, device_id="bench-0001", seq=1, boot_id=kc.uuid7(), clock_trusted=True))
    )

    bare = BareInsert(workdir / "bare.db", payload_size)

    enqueue_times: list[float] = []
    transaction_times: list[float] = []
    bare_times: list[float] = []
    for i in range(args.n):
        started = time.perf_counter()
        outbox.enqueue_one(sale)
        enqueue_times.append(time.perf_counter() - started)
        draft = outbox.draft(sale)
        started = time.perf_counter()
        with store.transaction() as conn:
            outbox.enqueue(conn, draft)
        transaction_times.append(time.perf_counter() - started)
        bare_times.append(bare.timed_insert())
        if i and i % 500 == 0:
            print(f"  {i}/{args.n}", file=sys.stderr)
    store.close()
    bare.close()

    kassa, in_txn, baseline = summary_ms(enqueue_times), summary_ms(transaction_times), summary_ms(bare_times)
    ratio = kassa["p50_ms"] / baseline["p50_ms"]
    txn_ratio = in_txn["p50_ms"] / baseline["p50_ms"]
    print(f"sale-sized commit ({payload_size} B payload, n={args.n}, WAL + synchronous=FULL)")
    print(f"  {'':<40}{'p50 ms':>10}{'p99 ms':>10}{'p50 ratio':>11}")
    print(f"  {'bare SQLite insert (baseline)':<40}{baseline['p50_ms']:>10.3f}{baseline['p99_ms']:>10.3f}{1:>10.2f}x")
    print(
        f"  {'outbox transaction, message drafted':<40}"
        f"{in_txn['p50_ms']:>10.3f}{in_txn['p99_ms']:>10.3f}{txn_ratio:>10.2f}x"
    )
    print(f"  {'outbox enqueue_one (all included)':<40}{kassa['p50_ms']:>10.3f}{kassa['p99_ms']:>10.3f}{ratio:>10.2f}x")
    print("  target: p50 <= 1.3x")
    save(
        "commit",
        {
            "n": args.n,
            "payload_bytes": payload_size,
            "bare": baseline,
            "transaction": in_txn,
            "enqueue_one": kassa,
            "p50_ratio_transaction": round(txn_ratio, 3),
            "p50_ratio_enqueue_one": round(ratio, 3),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
