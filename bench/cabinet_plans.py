"""Query plans of the partner cabinet's lists on a seeded database (bench/seed_cabinets.py):
EXPLAIN ANALYZE of each list's count and first page, for the largest partner and an ordinary
one, and whether the organisation's rows are found through an index (`Index Cond` on the
organisation column) or by walking another index / the table and filtering.

    python -m bench.cabinet_plans --schema kassa_bench_xxxx [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, create_engine, text

from bench.seed_cabinets import DEFAULT_URL, schema_url


@dataclass(frozen=True)
class Query:
    page: str
    what: str
    table: str  # the list's own table
    org_column: str  # what must be in the Index Cond of its scan
    sql: str  # :org is the partner's id


LICENCES = "SELECT * FROM licences WHERE partner_id = :org"
DOCUMENTS = "SELECT * FROM licence_documents WHERE partner_id = :org"
LINKS = (
    "SELECT l.*, c.name FROM partner_links l JOIN companies c ON c.id = l.company_id "
    "WHERE l.partner_id = :org AND l.state = '{state}'"
)
# The licence list's search as the partner page words it: licence ids, or the names of the partner's own
# clients (the companies holding its licences), not every company of the cloud
SEARCH = (
    "(id ILIKE '%Company 0123%' OR company_id IN "
    "(SELECT id FROM companies WHERE id IN (SELECT company_id FROM licences WHERE partner_id = :org) "
    "AND name ILIKE '%Company 0123%'))"
)
AUDIT = "SELECT * FROM audit_events WHERE org_level = 'partner' AND org_id = :org"
QUERIES = [
    Query("licences", "count", "licences", "partner_id", "SELECT count(*) FROM licences WHERE partner_id = :org"),
    Query("licences", "state counts", "licences", "partner_id",
          "SELECT state, count(*), count(company_id) FROM licences WHERE partner_id = :org GROUP BY state"),
    Query("licences", "page 1 by created_at", "licences", "partner_id", f"{LICENCES} ORDER BY created_at LIMIT 50"),
    Query("licences", "page 2 by id", "licences", "partner_id", f"{LICENCES} ORDER BY id LIMIT 50 OFFSET 50"),
    Query("licences", "sealed, page 1 by id", "licences", "partner_id",
          f"{LICENCES} AND state = 'sealed' ORDER BY id LIMIT 50"),
    Query("licences", "search: count", "licences", "partner_id",
          f"SELECT count(*) FROM ({LICENCES} AND {SEARCH}) AS found"),
    Query("licences", "search: page 1 by id", "licences", "partner_id",
          f"{LICENCES} AND {SEARCH} ORDER BY id LIMIT 50"),
    Query("documents", "count", "licence_documents", "partner_id",
          "SELECT count(*) FROM licence_documents WHERE partner_id = :org"),
    Query("documents", "page 1, newest (created_at)", "licence_documents", "partner_id",
          f"{DOCUMENTS} ORDER BY created_at DESC LIMIT 50"),
    Query("documents", "page 1, newest (id)", "licence_documents", "partner_id",
          f"{DOCUMENTS} ORDER BY id DESC LIMIT 50"),
    Query("links", "inbox count", "partner_links", "partner_id",
          "SELECT count(*) FROM partner_links WHERE partner_id = :org AND state = 'pending'"),
    Query("links", "inbox page 1", "partner_links", "partner_id",
          LINKS.format(state="pending") + " ORDER BY l.requested_at LIMIT 50"),
    Query("clients", "page 1 by name", "partner_links", "partner_id",
          LINKS.format(state="active") + " ORDER BY c.name LIMIT 50"),
    Query("audit", "count", "audit_events", "org_id",
          "SELECT count(*) FROM audit_events WHERE org_level = 'partner' AND org_id = :org"),
    Query("audit", "page 1, newest", "audit_events", "org_id", f"{AUDIT} ORDER BY at DESC LIMIT 50"),
]  # fmt: skip
INDEX_SCANS = ("Index Scan", "Index Only Scan", "Bitmap Index Scan")
BIG_TABLES = ("licences", "licence_documents", "audit_events", "partner_links", "companies", "licence_document_lines")


@dataclass
class Plan:
    query: Query
    partner: int
    ms: float
    rows: int
    found_by: str  # the index whose condition names the organisation, or ""
    notes: list[str]  # scans that read a big table without such a condition

    @property
    def ok(self) -> bool:
        return bool(self.found_by)


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def explain(conn: Connection, query: Query, partner: int) -> Plan:
    conn.execute(text(query.sql), {"org": partner}).all()  # warm, as the benchmark's pages are
    document = conn.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {query.sql}"), {"org": partner}).scalar_one()
    top = (json.loads(document) if isinstance(document, str) else document)[0]
    found_by = ""
    notes = []
    for node in _nodes(top["Plan"]):
        relation = node.get("Relation Name")
        index = node.get("Index Name")
        condition = node.get("Index Cond", "")
        if node["Node Type"] in INDEX_SCANS and query.org_column in condition:
            if relation in (query.table, None):  # a bitmap index scan names no relation
                found_by = found_by or str(index)
            continue
        # A whole table read, or an index walked in its order while a filter drops other organisations' rows
        walked = node["Node Type"] in INDEX_SCANS and not condition and "Filter" in node
        if relation in BIG_TABLES and (node["Node Type"] == "Seq Scan" or walked):
            how = f"{node['Node Type']} using {index}" if index else node["Node Type"]
            removed = node.get("Rows Removed by Filter", 0)
            notes.append(f"{how} on {relation}" + (f", {removed:,} rows filtered out" if removed else ""))
    return Plan(query, partner, top["Execution Time"], top["Plan"].get("Actual Rows", 0), found_by, notes)


def check_plans(url: str, partners: list[int]) -> list[Plan]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [explain(conn, query, partner) for query in QUERIES for partner in partners]
    finally:
        engine.dispose()


def print_plans(plans: list[Plan]) -> None:
    print(f"  {'page':<10}{'query':<28}{'partner':>8}{'ms':>8}  organisation's rows found by")
    for plan in plans:
        found = plan.found_by or "NO INDEX ON THE ORGANISATION"
        extra = f"; also {'; '.join(plan.notes)}" if plan.notes else ""
        print(f"  {plan.query.page:<10}{plan.query.what:<28}{plan.partner:>8}{plan.ms:>8.2f}  {found}{extra}")


def plans_summary(plans: list[Plan]) -> list[dict[str, Any]]:
    return [
        {
            "page": plan.query.page,
            "query": plan.query.what,
            "partner": plan.partner,
            "ms": round(plan.ms, 3),
            "index": plan.found_by or None,
            "other_scans": plan.notes,
        }
        for plan in plans
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schema", required=True, help="a schema seeded by bench.seed_cabinets --keep")
    parser.add_argument("--database-url", default=os.environ.get("KASSA_TEST_POSTGRES_URL", DEFAULT_URL))
    args = parser.parse_args(argv)
    url = schema_url(args.database_url, args.schema)
    engine = create_engine(url)
    with engine.connect() as conn:
        partners = conn.execute(text("SELECT count(*) FROM partners")).scalar_one()
    engine.dispose()
    plans = check_plans(url, [1, max(1, partners // 2)])
    print_plans(plans)
    return 0 if all(plan.ok for plan in plans) else 1


if __name__ == "__main__":
    sys.exit(main())
