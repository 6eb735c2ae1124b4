"""Seed a PostgreSQL schema shaped like a busy cloud, for the cabinets benchmark (issue #19).

One owner, P partners, C companies, about C/2 active partner links plus pending requests in
every partner's inbox and some closed links, L licences (sealed, unsealed by the partner,
with a company, bound to a company's device), the licence documents they came with (sales,
moves, unsealings, with their lines), A audit rows, and the people behind it all: one partner
admin per partner and one company admin per company. Every person has the same password and
the same argon2 hash (hashed once: 50,000 hashes would take an hour).

Shape: the largest 1 % of the partners (ids 1, 2, ...) hold half of everything partners have
(licences, documents, clients, audit rows); the others share the rest evenly. The benchmark's
sessions sign in as the largest partners first.

Rows go in with COPY through psycopg, ids chosen here (sequences moved past them at the end),
then VACUUM ANALYZE so the planner has the statistics a running database would have.

    python -m bench.seed_cabinets [--quick] [--partners 2000] [--companies 50000]
        [--licences 200000] [--audit 1000000] [--keep] [--database-url URL]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from broker.contract import licence as kl
from cloud_api.accounts.passwords import hash_password
from cloud_api.db import make_engine
from cloud_api.schema import upgrade as upgrade_schema

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PASSWORD = "bench cabinets 19"
LARGE_SHARE = 0.5  # what the largest 1 % of the partners hold together
HISTORY = timedelta(days=730)
SALE_BATCH = 100  # licences per sale document
MOVE_BATCH = 10  # licences per move document (one company each)
UNSEAL_SHARE = 0.2  # of the licences a partner unsealed for itself, those with an unsealing document
STATE_MIX = (("sealed", 0.40), ("self", 0.10), ("company", 0.25), ("bound", 0.25))
AUDIT_ACTIONS = (
    "licences.moved",
    "licence.unsealed",
    "licence.key_shown",
    "link.accepted",
    "link.rejected",
    "person.invited",
    "token.created",
    "signin",
)

# The columns each table's rows below give, in order.
COLUMNS = {
    "owners": ("id", "name", "created_at"),
    "partners": ("id", "owner_id", "name", "created_at"),
    "companies": ("id", "owner_id", "name", "created_at"),
    "people": ("id", "email", "name", "password_hash", "email_verified_at", "failed_signins", "created_at"),
    "users": ("id", "name", "role", "owner_id", "partner_id", "company_id", "person_id", "created_at"),
    "partner_links": (
        "id", "company_id", "partner_id", "state", "open_company_id", "message", "requested_by", "requested_at",
        "decided_at", "closed_at", "closed_by",
    ),
    "devices": ("device_id", "company_id", "created_at"),
    "licences": (
        "id", "owner_id", "partner_id", "company_id", "state", "licence_key", "key_lookup", "key_revealed_at",
        "entitlements", "valid_until", "device_id", "epoch", "lease_token", "lease_issued_at", "lease_expires_at",
        "created_at", "updated_at",
    ),
    "licence_documents": (
        "id", "number", "kind", "owner_id", "partner_id", "company_id", "quantity", "valid_until", "firm_name",
        "tax_number", "buyer_email", "note", "created_by_user_id", "created_by", "created_at",
    ),
    "licence_document_lines": ("document_id", "licence_id"),
    "audit_events": (
        "id", "at", "org_level", "org_id", "person_id", "user_id", "actor", "action", "target", "detail", "ip",
    ),
}  # fmt: skip
# The tables whose integer ids come from a sequence (the others have none or take strings).
SEQUENCED = ("owners", "partners", "companies", "people", "users", "partner_links", "licence_documents", "audit_events")


@dataclass(frozen=True)
class Shape:
    partners: int = 2_000
    companies: int = 50_000
    licences: int = 200_000
    audit: int = 1_000_000

    @property
    def large(self) -> int:
        return max(1, self.partners // 100)

    @property
    def active_links(self) -> int:
        return self.companies // 2


QUICK = Shape(partners=200, companies=5_000, licences=20_000, audit=100_000)


def row(table: str, **values: Any) -> tuple[Any, ...]:
    """A row of `table` in COLUMNS' order; columns not given are NULL."""
    unknown = set(values) - set(COLUMNS[table])
    if unknown:
        raise ValueError(f"{table} has no column {', '.join(sorted(unknown))}")
    return tuple(values.get(column) for column in COLUMNS[table])


def partner_email(partner_id: int) -> str:
    return f"partner-{partner_id:05d}@bench.test"


def company_email(company_id: int) -> str:
    return f"company-{company_id:06d}@bench.test"


def spread(total: int, partners: int, large: int) -> list[int]:
    """How many of `total` each partner gets: the `large` first share LARGE_SHARE, the rest the remainder."""
    big = round(total * LARGE_SHARE) if partners > large else total
    counts = []
    for index in range(partners):
        share, group, rank = (big, large, index) if index < large else (total - big, partners - large, index - large)
        counts.append(share // group + (1 if rank < share % group else 0))
    return counts


# ------------------------------------------------------------------------------ the database
@contextlib.contextmanager
def private_schema(base_url: str, *, keep: bool, prefix: str = "kassa_bench_") -> Iterator[tuple[str, str]]:
    """(schema, URL whose search_path is a fresh schema); the schema is dropped afterwards unless `keep`."""
    schema = f"{prefix}{uuid.uuid4().hex[:10]}"
    admin = create_engine(base_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema, schema_url(base_url, schema)
    finally:
        if keep:
            print(f'kept schema {schema}: drop it with  DROP SCHEMA "{schema}" CASCADE', file=sys.stderr)
        else:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def schema_url(base_url: str, schema: str) -> str:
    url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


class Copier:
    """COPY rows into tables through one psycopg connection, a progress line per table."""

    def __init__(self, engine: Engine) -> None:
        self.raw = engine.raw_connection()
        self.pg: Any = self.raw.driver_connection
        self.counts: dict[str, int] = {}

    def copy(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        started = time.perf_counter()
        n = 0
        with self.pg.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                n += 1
        self.pg.commit()
        elapsed = time.perf_counter() - started
        self.counts[table] = self.counts.get(table, 0) + n
        print(f"  {table:<24}{n:>11,} rows {elapsed:7.1f} s {n / elapsed:>11,.0f} rows/s", file=sys.stderr, flush=True)
        return n

    def finish(self) -> None:
        """Sequences past the ids written here, then the planner's statistics of these tables."""
        self.pg.autocommit = True
        with self.pg.cursor() as cursor:
            for table in self.counts:
                if table in SEQUENCED:
                    cursor.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                    )
            started = time.perf_counter()
            cursor.execute(f"VACUUM ANALYZE {', '.join(self.counts)}")
            print(f"  {'VACUUM ANALYZE':<24}{'':>16} {time.perf_counter() - started:7.1f} s", file=sys.stderr)
        self.raw.close()


# ------------------------------------------------------------------------------ the rows
@dataclass
class Seeded:
    url: str
    shape: Shape
    counts: dict[str, int]
    seconds: float


class Sold(NamedTuple):
    """What the documents need to know of a licence."""

    id: str
    partner: int
    company: int | None
    kind: str  # of STATE_MIX
    sold: datetime  # its sale batch's moment (the sale document's)
    created: datetime
    revealed: datetime | None


class Seeder:
    def __init__(self, shape: Shape, now: datetime) -> None:
        self.shape = shape
        self.now = now
        self.rng = random.Random(19)
        self.start = now - HISTORY
        self.partner_user = {p: 1 + p for p in range(1, shape.partners + 1)}  # user id of each partner's admin
        self.company_user = {c: 1 + shape.partners + c for c in range(1, shape.companies + 1)}
        self.clients: dict[int, list[int]] = {}  # partner id -> its actively linked companies
        self.licences: list[Sold] = []
        self.devices: list[tuple[str, int, datetime]] = []  # device_id, company_id, created_at

    def moment(self, after: datetime | None = None) -> datetime:
        low = (after or self.start).timestamp()
        return datetime.fromtimestamp(self.rng.uniform(low, self.now.timestamp()), UTC)

    def organisations(self, kind: str, count: int) -> Iterator[tuple[Any, ...]]:
        width = 5 if kind == "Partner" else 6
        return ((n, 1, f"{kind} {n:0{width}d}", self.moment()) for n in range(1, count + 1))

    def people_and_users(self, password_hash: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        people: list[tuple[Any, ...]] = [
            (1, "owner@bench.test", "Bench Owner", password_hash, self.start, 0, self.start)
        ]
        users: list[tuple[Any, ...]] = [(1, "Bench Owner", "owner_admin", 1, None, None, 1, self.start)]
        for p, user_id in self.partner_user.items():
            people.append((user_id, partner_email(p), f"Partner {p} admin", password_hash, self.start, 0, self.start))
            users.append((user_id, f"Partner {p} admin", "partner_admin", 1, p, None, user_id, self.start))
        for c, user_id in self.company_user.items():
            people.append((user_id, company_email(c), f"Company {c} admin", password_hash, self.start, 0, self.start))
            users.append((user_id, f"Company {c} admin", "company_admin", 1, None, c, user_id, self.start))
        return people, users

    def links(self) -> Iterator[tuple[Any, ...]]:
        shape = self.shape
        companies = list(range(1, shape.companies + 1))
        self.rng.shuffle(companies)
        free = iter(companies)
        link_id = 0
        for index, count in enumerate(spread(shape.active_links, shape.partners, shape.large)):
            partner = index + 1
            pending = 20 if index < shape.large else 2
            self.clients[partner] = []
            for n in range(count + pending):
                company = next(free, None)
                if company is None:
                    break
                link_id += 1
                asked = self.moment()
                opened: dict[str, Any] = {
                    "id": link_id,
                    "company_id": company,
                    "partner_id": partner,
                    "open_company_id": company,
                }
                opened |= {"requested_by": self.company_user[company], "requested_at": asked}
                if n < count:
                    self.clients[partner].append(company)
                    yield row("partner_links", **opened, state="active", decided_at=self.moment(asked))
                else:
                    yield row("partner_links", **opened, state="pending", message="Please serve our shop")
        for _ in range(shape.active_links // 10):  # history: links that were rejected or ended
            link_id += 1
            company = self.rng.randint(1, shape.companies)
            partner = self.rng.randint(1, shape.partners)
            asked = self.moment()
            decided = self.moment(asked)
            state, closed = ("ended", self.moment(decided)) if self.rng.random() < 0.5 else ("rejected", decided)
            yield row(
                "partner_links",
                id=link_id,
                company_id=company,
                partner_id=partner,
                state=state,
                requested_by=self.company_user[company],
                requested_at=asked,
                decided_at=decided,
                closed_at=closed,
                closed_by=self.partner_user[partner] if state == "rejected" else self.company_user[company],
            )

    def licence_rows(self) -> Iterator[tuple[Any, ...]]:
        """Licences as the owner sold them: batches of SALE_BATCH to one partner at a time, in
        date order across partners (so ids and pages interleave as in a real book). The bound
        ones' devices are collected in `self.devices`: insert those first."""
        shape = self.shape
        kinds = [kind for kind, _share in STATE_MIX]
        weights = [share for _kind, share in STATE_MIX]
        lease = "bench-lease." + "x" * 400  # list pages never read it; a real lease token is about this long
        entitlements = json.dumps({"points_of_sale": 1})
        state_of = {"sealed": "sealed", "self": "assigned", "company": "assigned", "bound": "bound"}
        sales = []
        for index, count in enumerate(spread(shape.licences, shape.partners, shape.large)):
            sales += [(self.moment(), index + 1, min(SALE_BATCH, count - n)) for n in range(0, count, SALE_BATCH)]
        for sold, partner, count in sorted(sales):
            clients = self.clients.get(partner) or []
            for n, drawn in enumerate(self.rng.choices(kinds, weights, k=count)):
                kind = "sealed" if drawn in ("company", "bound") and not clients else drawn
                created = sold + timedelta(milliseconds=n)
                key = kl.new_licence_key()
                licence_id = f"lic_{self.rng.getrandbits(80):020x}"
                company = self.rng.choice(clients) if kind in ("company", "bound") else None
                revealed = None if kind == "sealed" else self.moment(created)
                bound: dict[str, Any] = {"epoch": 0}
                if company is not None and revealed is not None and kind == "bound":
                    device = f"bench-{len(self.devices) + 1:07d}"
                    self.devices.append((device, company, revealed))
                    issued = self.moment(revealed)
                    bound = {"device_id": device, "epoch": self.rng.randint(1, 3), "lease_token": lease}
                    bound |= {"lease_issued_at": issued, "lease_expires_at": issued + timedelta(days=7)}
                self.licences.append(Sold(licence_id, partner, company, kind, sold, created, revealed))
                yield row(
                    "licences",
                    id=licence_id,
                    owner_id=1,
                    partner_id=partner,
                    company_id=company,
                    state=state_of[kind],
                    licence_key=key,
                    key_lookup=hashlib.sha256(key.encode()).hexdigest(),
                    key_revealed_at=revealed,
                    entitlements=entitlements,
                    valid_until=created + timedelta(days=self.rng.choice((365, 730, 1095))),
                    created_at=created,
                    updated_at=revealed or created,
                    **bound,
                )

    def documents(self) -> tuple[list[tuple[Any, ...]], list[tuple[int, str]]]:
        """A sale document (owner -> partner) per batch the licences were sold in, moves
        (partner -> company) of the licences companies hold, MOVE_BATCH at a time, and
        unsealings for some of the licences partners unsealed for themselves; numbered in date order."""
        made: list[tuple[datetime, str, int, list[Sold], dict[str, Any]]] = []
        batches: dict[tuple[datetime, int], list[Sold]] = {}
        given: dict[tuple[int, int], list[Sold]] = {}
        for licence in self.licences:
            batches.setdefault((licence.sold, licence.partner), []).append(licence)
            if licence.company is not None:
                given.setdefault((licence.partner, licence.company), []).append(licence)
            elif licence.kind == "self" and licence.revealed and self.rng.random() < UNSEAL_SHARE:
                n = len(made)
                buyer = {"firm_name": f"Buyer {n} LLC", "tax_number": f"{7700000000 + n}"}
                made.append((licence.revealed, "unseal", licence.partner, [licence], buyer))
        for (sold, partner), batch in batches.items():
            made.append((sold, "sale", partner, batch, {"valid_until": self.now + HISTORY}))
        for (partner, company), held in given.items():
            held.sort(key=lambda licence: licence.revealed or licence.created)
            for start in range(0, len(held), MOVE_BATCH):
                moved = held[start : start + MOVE_BATCH]
                when = max(licence.revealed or licence.created for licence in moved)
                made.append((when, "move", partner, moved, {"company_id": company}))
        made.sort(key=lambda document: document[0])
        docs: list[tuple[Any, ...]] = []
        lines: list[tuple[int, str]] = []
        for doc_id, (when, kind, partner, batch, extra) in enumerate(made, start=1):
            by = ("owner@bench.test", 1) if kind == "sale" else (partner_email(partner), self.partner_user[partner])
            if kind == "unseal":
                extra["buyer_email"] = f"buyer-{doc_id}@example.test"
            docs.append(
                row(
                    "licence_documents",
                    id=doc_id,
                    number=f"{kind[0].upper()}-{doc_id:06d}",
                    kind=kind,
                    owner_id=1,
                    partner_id=partner,
                    quantity=len(batch),
                    created_by_user_id=by[1],
                    created_by=by[0],
                    created_at=when,
                    **extra,
                )
            )
            lines.extend((doc_id, licence.id) for licence in batch)
        return docs, lines

    def audit_rows(self) -> Iterator[tuple[Any, ...]]:
        """In time order, each from a random organisation: half at partner level (the largest
        partners LARGE_SHARE of those), 45 % at company level, the rest the owner's."""
        shape = self.shape
        step = HISTORY / max(1, shape.audit)
        large, partners = shape.large, shape.partners
        for row_id in range(1, shape.audit + 1):
            draw = self.rng.random()
            if draw < 0.5:
                big = self.rng.random() < LARGE_SHARE or partners == large
                org = self.rng.randint(1, large) if big else self.rng.randint(large + 1, partners)
                level, user, actor = "partner", self.partner_user[org], partner_email(org)
            elif draw < 0.95:
                org = self.rng.randint(1, shape.companies)
                level, user, actor = "company", self.company_user[org], company_email(org)
            else:
                org, level, user, actor = 1, "owner", 1, "owner@bench.test"
            action = self.rng.choice(AUDIT_ACTIONS)
            # In COLUMNS' order (a million rows: no keyword arguments)
            yield (row_id, self.start + step * row_id, level, org, user, user, actor, action, f"item {row_id}",
                   f"{action} by {actor}", f"192.0.2.{row_id % 250 + 1}")  # fmt: skip


def seed(url: str, shape: Shape) -> Seeded:
    """Migrate the (empty) database at `url` and fill it in the shape asked."""
    started = time.perf_counter()
    engine = make_engine(url)
    try:
        upgrade_schema(engine)
        now = datetime.now(UTC)
        seeder = Seeder(shape, now)
        copier = Copier(engine)
        password_hash = hash_password(PASSWORD)  # once: every person shares it
        copier.copy("owners", COLUMNS["owners"], [(1, "Bench Owner", seeder.start)])
        copier.copy("partners", COLUMNS["partners"], seeder.organisations("Partner", shape.partners))
        copier.copy("companies", COLUMNS["companies"], seeder.organisations("Company", shape.companies))
        people, users = seeder.people_and_users(password_hash)
        copier.copy("people", COLUMNS["people"], people)
        copier.copy("users", COLUMNS["users"], users)
        copier.copy("partner_links", COLUMNS["partner_links"], seeder.links())
        licences = list(seeder.licence_rows())  # collects the devices the bound ones need first
        copier.copy("devices", COLUMNS["devices"], seeder.devices)
        copier.copy("licences", COLUMNS["licences"], licences)
        del licences
        docs, lines = seeder.documents()
        copier.copy("licence_documents", COLUMNS["licence_documents"], docs)
        copier.copy("licence_document_lines", COLUMNS["licence_document_lines"], lines)
        copier.copy("audit_events", COLUMNS["audit_events"], seeder.audit_rows())
        copier.finish()
        return Seeded(url, shape, copier.counts, time.perf_counter() - started)
    finally:
        engine.dispose()


def shape_from(args: argparse.Namespace) -> Shape:
    base = QUICK if args.quick else Shape()
    return Shape(
        partners=args.partners or base.partners,
        companies=args.companies or base.companies,
        licences=args.licences or base.licences,
        audit=args.audit if args.audit is not None else base.audit,
    )


def add_shape_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help=f"a tenth of the full size: {QUICK}")
    parser.add_argument("--partners", type=int)
    parser.add_argument("--companies", type=int)
    parser.add_argument("--licences", type=int)
    parser.add_argument("--audit", type=int, help="audit_events rows")
    parser.add_argument("--database-url", default=os.environ.get("KASSA_TEST_POSTGRES_URL", DEFAULT_URL))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_shape_arguments(parser)
    parser.add_argument("--keep", action="store_true", help="keep the schema (bench.cabinets --schema uses it)")
    args = parser.parse_args(argv)
    shape = shape_from(args)
    print(f"seeding {shape}", file=sys.stderr)
    with private_schema(args.database_url, keep=args.keep) as (schema, url):
        seeded = seed(url, shape)
        print(f"seeded schema {schema} in {seeded.seconds:.0f} s ({sum(seeded.counts.values()):,} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
