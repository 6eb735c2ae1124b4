"""Lists in the cabinets: a page of rows, its count ("1–50 of 12,403"), sorting and paging
links that keep the filters. Keyset paging is not needed at these sizes: a partner's lists
are thousands of rows, and every list query is bounded by an index on its organisation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Select, func, inspect, select
from sqlalchemy.orm import Session
from starlette.requests import Request

from cloud_api.web.i18n import Language

PER_PAGE = 50
MAX_PAGE = 100_000


@dataclass
class Listing:
    rows: list[Any]
    total: int
    page: int
    per_page: int
    sort: str
    descending: bool
    path: str
    params: dict[str, str] = field(default_factory=dict)
    lang: Language | None = None

    def _url(self, **changes: Any) -> str:
        params = {**self.params, "sort": self.sort, "dir": "desc" if self.descending else "asc", "page": self.page}
        params.update(changes)
        return f"{self.path}?{urlencode({k: v for k, v in params.items() if v not in (None, '')})}"

    @property
    def first(self) -> int:
        return 0 if self.total == 0 else (self.page - 1) * self.per_page + 1

    @property
    def last(self) -> int:
        return min(self.page * self.per_page, self.total)

    @property
    def summary(self) -> str:
        assert self.lang is not None
        if self.total == 0:
            return self.lang.gettext("None")
        return self.lang.gettext("{first}–{last} of {total}").format(
            first=self.lang.number(self.first), last=self.lang.number(self.last), total=self.lang.number(self.total)
        )

    @property
    def previous_url(self) -> str | None:
        return self._url(page=self.page - 1) if self.page > 1 else None

    @property
    def next_url(self) -> str | None:
        return self._url(page=self.page + 1) if self.last < self.total else None

    def sort_url(self, key: str) -> str:
        descending = not self.descending if key == self.sort else False
        return self._url(sort=key, dir="desc" if descending else "asc", page=1)


def _primary_key(query: Select[Any]) -> list[Any]:
    entity = query.column_descriptions[0].get("entity") if query.column_descriptions else None
    return list(inspect(entity).primary_key) if entity is not None else []


def page_of(
    db: Session,
    request: Request,
    query: Select[Any],
    *,
    sorts: dict[str, Any],
    default_sort: str,
    default_descending: bool = False,
    lang: Language,
    keep: tuple[str, ...] = (),
    scalars: bool = True,
) -> Listing:
    """One page of `query` as the request's `page`, `sort` and `dir` ask (unknown values fall
    back to the defaults); `keep` names the filter parameters the links carry along."""
    args = request.query_params
    sort = args.get("sort", default_sort)
    if sort not in sorts:
        sort = default_sort
    descending = args.get("dir", "desc" if default_descending else "asc") == "desc"
    try:
        page = min(max(int(args.get("page", "1")), 1), MAX_PAGE)
    except ValueError:
        page = 1
    total = db.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    column = sorts[sort]
    # Ties (a state, a date) are broken by the row's key, so no row moves between pages.
    keys = [key for key in _primary_key(query) if key is not column]
    ordered = query.order_by(*[(c.desc() if descending else c.asc()) for c in (column, *keys)])
    ordered = ordered.limit(PER_PAGE).offset((page - 1) * PER_PAGE)
    rows: list[Any] = list(db.scalars(ordered)) if scalars else [tuple(row) for row in db.execute(ordered).all()]
    params = {key: args[key] for key in keep if args.get(key)}
    return Listing(rows, total, page, PER_PAGE, sort, descending, request.url.path, params, lang)
