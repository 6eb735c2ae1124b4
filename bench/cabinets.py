"""The partner cabinet under load on a large PostgreSQL database (issue #19).

1. Seed a private schema (bench/seed_cabinets.py; or reuse one kept with --schema).
2. Check the query plans of the partner lists (bench/cabinet_plans.py).
3. Start the cloud's HTTP server on it in its own process (bench/cabinets_server.py: the app
   and uvicorn as `kassa-cloud serve` runs them, each response's server time in a header).
4. Sign-in: partner admins sign in through the real form (GET /signin for the CSRF cookie and
   field, POST /signin), one after another, alternating with a bare argon2 `verify` of the
   same hash in this process: the same-run baseline.
5. Load, in three phases: one session alone (the same-run baseline: what a page costs with
   nobody else), then all sessions back to back (no pause: the server's ceiling), then all
   sessions as people use a cabinet (about `--think-ms` between pages). A session is one
   signed-in partner admin in its own thread with its own httpx client and cookies; each
   requests the licence list, the document list and the link inbox (and filtered, sorted,
   paged and searched variants) `--requests` times. The sessions sign in as the largest
   partners first (bench/seed_cabinets.py).

Server time is the app's own (Server-Timing, from the request reaching the app to the
response starting: waiting for a worker thread, the database and rendering included); the
round trip seen by the client and the p95 interpolated from the app's Prometheus histogram
(GET /metrics, before and after) are reported next to it.

Targets, read on the last phase: each list's server p95 <= 100 ms with 20 sessions; sign-in
p95 <= argon2 verify p95 + 20 ms (round trips). The exit status is 1 when one is missed.

    python -m bench.cabinets [--quick] [--sessions 20] [--requests 50] [--schema NAME] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from argon2 import PasswordHasher
from sqlalchemy import create_engine, text

from bench._stats import percentile, save
from bench.cabinet_plans import check_plans, plans_summary, print_plans
from bench.cabinets_server import cloud_server, histogram, histogram_p95_ms
from bench.seed_cabinets import PASSWORD, Shape, add_shape_arguments, partner_email, private_schema, schema_url, seed
from bench.seed_cabinets import shape_from as seed_shape

PAGES = {  # the lists of issue #19 and the variants people use; each session cycles through them
    "/partner/licences": (
        "/partner/licences",
        "/partner/licences?page=2",
        "/partner/licences?state=sealed",
        "/partner/licences?state=bound&page=2",
        "/partner/licences?sort=valid_until&dir=desc",
        "/partner/licences?q=Company+0123",  # a client's name, as typed
    ),
    "/partner/documents": (
        "/partner/documents",
        "/partner/documents?page=2",
        "/partner/documents?kind=move",
        "/partner/documents?q=M-00012",
    ),
    "/partner/links": ("/partner/links", "/partner/links?sort=company"),
}
TARGET_MS = 100.0
SIGNIN_MARGIN_MS = 20.0
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Sample:
    page: str
    url: str
    status: int
    client_ms: float
    server_ms: float | None


def server_ms(reply: httpx.Response) -> float | None:
    found = re.search(r"app;dur=([0-9.]+)", reply.headers.get("server-timing", ""))
    return float(found.group(1)) if found else None


class Browser:
    """One person's browser: its own connection and cookies."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.Client(base_url=base_url, follow_redirects=False, timeout=120)

    def sign_in(self, email: str) -> Sample:
        page = self.client.get("/signin")
        found = _CSRF.search(page.text)
        if page.status_code != 200 or found is None:
            raise SystemExit(f"GET /signin answered {page.status_code} without a CSRF field: {page.text[:300]}")
        started = time.perf_counter()
        reply = self.client.post("/signin", data={"email": email, "password": PASSWORD, "csrf_token": found.group(1)})
        elapsed = (time.perf_counter() - started) * 1000
        if reply.status_code != 303 or not reply.headers.get("location", "").startswith("/partner"):
            raise SystemExit(
                f"POST /signin as {email} answered {reply.status_code} -> {reply.headers.get('location')}, "
                f"not a redirect to the partner cabinet: {reply.text[:300]}"
            )
        return Sample("POST /signin", "/signin", reply.status_code, elapsed, server_ms(reply))

    def get(self, page: str, url: str) -> Sample:
        started = time.perf_counter()
        reply = self.client.get(url)
        elapsed = (time.perf_counter() - started) * 1000
        return Sample(page, url, reply.status_code, elapsed, server_ms(reply))


# ------------------------------------------------------------------------------ the runs
def sign_in_run(base: str, emails: list[str], n: int, password_hash: str) -> tuple[list[Sample], list[float]]:
    """`n` sign-ins through the form, each followed by a bare argon2 verify of the same hash."""
    hasher = PasswordHasher()
    signins, verifies = [], []
    for i in range(n):
        browser = Browser(base)
        signins.append(browser.sign_in(emails[i % len(emails)]))
        browser.client.close()
        started = time.perf_counter()
        hasher.verify(password_hash, PASSWORD)
        verifies.append((time.perf_counter() - started) * 1000)
    return signins, verifies


@dataclass
class Load:
    samples: list[Sample] = field(default_factory=list)
    seconds: float = 0.0


def run_sessions(browsers: list[Browser], requests: int, think_s: float) -> Load:
    """Every browser at once, `requests` pages each; a pause of `think_s` (0.5x-1.5x at random) after each."""
    urls = [(page, url) for page, variants in PAGES.items() for url in variants]
    order = [urls[(i * 7) % len(urls)] for i in range(len(urls))]  # pages interleaved, not list by list
    barrier = threading.Barrier(len(browsers) + 1)
    load = Load()
    lock = threading.Lock()

    def session(index: int, browser: Browser) -> None:
        pauses = random.Random(index)
        barrier.wait()
        mine = []
        for k in range(requests):
            page, url = order[(index + k) % len(order)]
            mine.append(browser.get(page, url))
            if think_s:
                time.sleep(think_s * pauses.uniform(0.5, 1.5))
        with lock:
            load.samples.extend(mine)

    threads = [threading.Thread(target=session, args=(i, b)) for i, b in enumerate(browsers)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    load.seconds = time.perf_counter() - started
    return load


@dataclass(frozen=True)
class Phase:
    name: str
    sessions: int
    think_ms: float
    judged: bool  # the phase the targets are read on


def phases(sessions: int, think_ms: float) -> list[Phase]:
    """One session alone (the same-run baseline: a page's service time with no one else), then
    all sessions back to back (no pause: the server's ceiling), then all sessions as people use
    a cabinet (a pause between pages); the targets are read on the last one."""
    found = [
        Phase("1 session alone (baseline)", 1, 0.0, False),
        Phase(f"{sessions} sessions, back to back", sessions, 0.0, think_ms <= 0),
    ]
    if think_ms > 0:
        found.append(Phase(f"{sessions} sessions, about {think_ms:.0f} ms between pages", sessions, think_ms, True))
    return found


def check_pages(browser: Browser) -> list[str]:
    """Each URL once (this also warms the caches); what is not 200, said plainly."""
    missing = []
    for page, variants in PAGES.items():
        for url in variants:
            sample = browser.get(page, url)
            if sample.status != 200:
                missing.append(f"GET {url} answered {sample.status}")
    return missing


def ms(values: list[float], q: float) -> float:
    return round(percentile(values, q), 2) if values else float("nan")


def report(
    load: Load, before: dict[str, Any], after: dict[str, Any], sessions: int, *, per_url: bool = False
) -> dict[str, Any]:
    """Per list: round trip and server time (ms) percentiles, the histogram's p95, the target;
    with `per_url`, each variant's server p50 and p95 too."""
    rows: dict[str, Any] = {}
    print(f"  {'list / variant':<46}{'n':>5}{'client p50':>11}{'p95':>8}{'server p50':>11}{'p95':>8}{'p99':>8}"
          f"{'hist. p95':>10}  p95 <= {TARGET_MS:.0f} ms")  # fmt: skip
    for page in PAGES:
        samples = [s for s in load.samples if s.page == page]
        client = [s.client_ms for s in samples]
        server = [s.server_ms for s in samples if s.server_ms is not None]
        by_buckets = histogram_p95_ms(before.get(page, {}), after.get(page, {}))
        p95 = ms(server, 95) if server else by_buckets
        met = p95 is not None and p95 <= TARGET_MS
        variants = {}
        for url in PAGES[page]:
            times = [s.server_ms for s in samples if s.url == url and s.server_ms is not None]
            variants[url] = {"n": len(times), "server_p50_ms": ms(times, 50), "server_p95_ms": ms(times, 95)}
        rows[page] = {
            "n": len(samples),
            "client_p50_ms": ms(client, 50),
            "client_p95_ms": ms(client, 95),
            "server_p50_ms": ms(server, 50),
            "server_p95_ms": ms(server, 95),
            "server_p99_ms": ms(server, 99),
            "histogram_p95_ms": round(by_buckets, 1) if by_buckets is not None else None,
            "target_met": met,
            "variants": variants,
        }
        row = rows[page]
        print(f"  {page:<46}{len(samples):>5}{row['client_p50_ms']:>11.1f}{row['client_p95_ms']:>8.1f}"
              f"{row['server_p50_ms']:>11.1f}{row['server_p95_ms']:>8.1f}{row['server_p99_ms']:>8.1f}"
              f"{by_buckets or float('nan'):>10.1f}  {'met' if met else 'NOT met'}")  # fmt: skip
        if per_url:
            for url, variant in variants.items():
                print(
                    f"    {url:<44}{variant['n']:>5}{'':>19}{variant['server_p50_ms']:>11.1f}"
                    f"{variant['server_p95_ms']:>8.1f}"
                )
    print(f"  {len(load.samples)} requests by {sessions} sessions in {load.seconds:.1f} s "
          f"({len(load.samples) / load.seconds:.0f} pages/s); times in ms")  # fmt: skip
    return rows


def sign_in_report(signins: list[Sample], verifies: list[float]) -> dict[str, Any]:
    client = [s.client_ms for s in signins]
    server = [s.server_ms for s in signins if s.server_ms is not None]
    over = ms(client, 95) - ms(verifies, 95)
    result = {
        "n": len(signins),
        "signin_p50_ms": ms(client, 50),
        "signin_p95_ms": ms(client, 95),
        "signin_server_p95_ms": ms(server, 95),
        "argon2_verify_p50_ms": ms(verifies, 50),
        "argon2_verify_p95_ms": ms(verifies, 95),
        "p95_over_verify_ms": round(over, 2),
        "target_met": over <= SIGNIN_MARGIN_MS,
    }
    print(f"sign-in, {len(signins)} one after another: POST /signin p50 {result['signin_p50_ms']:.1f} ms, "
          f"p95 {result['signin_p95_ms']:.1f} ms (server p95 {result['signin_server_p95_ms']:.1f} ms); "
          f"bare argon2 verify p50 {result['argon2_verify_p50_ms']:.1f} ms, p95 {result['argon2_verify_p95_ms']:.1f} "
          f"ms; p95 difference {over:.1f} ms (target <= {SIGNIN_MARGIN_MS:.0f} ms): "
          f"{'met' if result['target_met'] else 'NOT met'}")  # fmt: skip
    return result


def seeded_shape(url: str) -> tuple[Shape, str]:
    """The shape of a kept seed, and the password hash its people share."""
    engine = create_engine(url)
    with engine.connect() as conn:
        count = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                 for t in ("partners", "companies", "licences", "audit_events")}  # fmt: skip
        password_hash = conn.execute(text("SELECT password_hash FROM people WHERE id = 2")).scalar_one()
    engine.dispose()
    shape = Shape(count["partners"], count["companies"], count["licences"], count["audit_events"])
    return shape, password_hash


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_shape_arguments(parser)
    parser.add_argument("--sessions", type=int, default=20, help="signed-in partner admins loading pages at once")
    parser.add_argument("--requests", type=int, default=50, help="pages each session requests")
    parser.add_argument("--signins", type=int, default=60, help="sign-ins timed one after another")
    parser.add_argument(
        "--think-ms", type=float, default=1000.0, help="a person's pause between pages in the last phase (0: none)"
    )
    parser.add_argument("--schema", help="reuse a schema kept by bench.seed_cabinets --keep (not dropped)")
    parser.add_argument("--keep", action="store_true", help="keep the seeded schema for later runs")
    parser.add_argument("--server-url", help="load a cloud already running on the seeded schema instead")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.schema:
            schema, url = args.schema, schema_url(args.database_url, args.schema)
            shape, password_hash = seeded_shape(url)
            seed_seconds = None
        else:
            schema, url = stack.enter_context(private_schema(args.database_url, keep=args.keep))
            asked = seed_shape(args)
            print(f"seeding {asked}", file=sys.stderr)
            seed_seconds = seed(url, asked).seconds
            shape, password_hash = seeded_shape(url)
        seeded = f"seeded in {seed_seconds:.0f} s" if seed_seconds else "kept from an earlier run"
        print(f"schema {schema}: {shape}, {seeded}", file=sys.stderr)
        print("query plans (EXPLAIN ANALYZE, warm):")
        plans = check_plans(url, [1, max(1, shape.partners // 2)])
        print_plans(plans)
        base = args.server_url or stack.enter_context(cloud_server(url))
        emails = [partner_email(p) for p in range(1, min(args.sessions, shape.partners) + 1)]
        signins, verifies = sign_in_run(base, emails, args.signins, password_hash)
        signin = sign_in_report(signins, verifies)
        browsers = [Browser(base) for _ in emails]
        for browser, email in zip(browsers, emails, strict=True):
            stack.callback(browser.client.close)
            browser.sign_in(email)
        missing = check_pages(browsers[0])
        if missing:
            print(
                "the partner cabinet's lists this benchmark loads are not all there (it needs a tree with the "
                "partner pages of issue #19):\n  " + "\n  ".join(missing)
            )
            return 2
        for browser in browsers[1:]:
            check_pages(browser)
        results: dict[str, dict[str, Any]] = {}
        failed: list[str] = []
        for phase in phases(len(browsers), args.think_ms):
            before = histogram(base)
            load = run_sessions(browsers[: phase.sessions], args.requests, phase.think_ms / 1000)
            after = histogram(base)
            print(
                f"\n{phase.name}: {shape}, {args.requests} pages per session" + (" (TARGETS)" if phase.judged else "")
            )
            results[phase.name] = {
                "sessions": phase.sessions,
                "think_ms": phase.think_ms,
                "judged": phase.judged,
                "pages_per_s": round(len(load.samples) / load.seconds, 1),
                "pages": report(load, before, after, phase.sessions, per_url=phase.sessions == 1 or phase.judged),
            }
            failed += [f"{s.status} {s.url}" for s in load.samples if s.status != 200]
        if failed:
            print(f"{len(failed)} requests failed, e.g. {failed[:3]}")
    save(
        "cabinets",
        {
            "shape": vars(shape) | {"large_partners": shape.large},
            "seed_seconds": round(seed_seconds, 1) if seed_seconds else None,
            "requests_per_session": args.requests,
            "phases": results,
            "signin": signin,
            "plans": plans_summary(plans),
        },
    )
    judged = [row for phase in results.values() if phase["judged"] for row in phase["pages"].values()]
    met = all(row["target_met"] for row in judged) and signin["target_met"] and not failed
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
