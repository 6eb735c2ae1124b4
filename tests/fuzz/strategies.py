"""Shared by the fuzz modules: nasty JSON values, mutations of valid documents, byte damage.

A mutation starts from a valid document (so the parser gets past its first checks) and
changes one to three things in it: a value replaced by a nasty one, a key dropped, an
unknown key added, a value wrapped in a list or object. The result is then serialised, and
sometimes damaged as bytes (cut short, a byte inserted, invalid UTF-8, deep nesting).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from hypothesis import strategies as st

# Values that sit on or just past the limits the contract, the POS API and the config use.
NASTY_INTS = [
    0,
    1,
    -1,
    2,
    999,
    1000,
    10_000,
    10_001,
    65535,
    65536,
    2**31 - 1,
    2**31,
    2**53 + 1,
    10**9,
    10**9 + 1,
    10**15,
    10**15 + 1,
    2**63 - 1,
    2**63,
    -(2**63) - 1,
    2**64,
    10**30,
    10**300,
]  # longer digit runs: damaged("digits")
NASTY_FLOATS = [0.0, -0.0, 0.5, 1.5, 2040.0, 1e308, -1e308, 5e-324, float("inf"), float("-inf"), float("nan")]
NASTY_TEXT = [
    "",
    " ",
    "x",
    "\x00",
    "\n",
    "a\nb",
    "\t",
    "\x7f",
    "\u2028",
    "\ufeff",
    "\ud800",
    "a\udfffb",
    "é",
    "💥",
    "Zürich ☕",
    "x" * 64,
    "x" * 65,
    "x" * 201,
    "€" * 64,
    "x" * 9000,
    "EUR",
    "eur",
    "cash",
    "card",
    "null",
    "true",
    "NaN",
    "1e999",
    "../..",
    "kassa/v1/dev/#",
    "${jndi}",
    "\u202eevil",
    # timestamps: valid, odd, and at the edges of the calendar (offsets push them past year 1/9999)
    "2025-03-01T09:30:00.125Z",
    "2025-03-01T09:30:00",
    "2025-02-30T09:30:00Z",
    "1970-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59.999Z",
    "9999-12-31T23:59:59-14:00",
    # ids: UUIDv7, other versions, other spellings
    "0195510b-02d8-7000-8000-000000000062",
    "0b3c8f52-1f6a-4e0e-9d4a-6c2b7e915a10",
    "00000000-0000-0000-0000-000000000000",
    "0B3C8F52-1F6A-4E0E-9D4A-6C2B7E915A10",
    "{0195510b-02d8-7000-8000-000000000062}",
    "0195510b02d870008000000000000062",
]
NASTY = [None, True, False, [], {}, [None], {"": None}, *NASTY_INTS, *NASTY_FLOATS, *NASTY_TEXT]
NASTY_TIMESTAMPS = [t for t in NASTY_TEXT if t[:4].isdigit()]
NASTY_IDS = [t for t in NASTY_TEXT if len(t) >= 32 and t.count("-") in (0, 4) and not t[:4].isdigit()]
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-")

_scalars = st.one_of(
    st.sampled_from(NASTY).map(copy.deepcopy),  # a copy: a mutation must never change the shared list
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.text(st.characters(codec="utf-8"), max_size=12),
)
scalars = st.deferred(lambda: _scalars)  # deferred: a short repr in hypothesis' reports
_json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
json_values = st.deferred(lambda: _json_values)


SHORT_TEXT = ["", "\x00", "a\nb", "\ud800", "x" * 65, "x" * 201, "x" * 9000]


def similar_values(value: Any, short: bool = False) -> list[Any]:
    """Nasty values of the kind ``value`` is: a parser checks those most closely. ``short``:
    fewer of the free-text ones (for sweeps over every field)."""
    if isinstance(value, bool) or value is None:
        return [None, True, False, 0, 1, "true", []]
    if isinstance(value, int):
        return [*NASTY_INTS, value - 1, value + 1, -value, value * 1.0 if abs(value) < 1e300 else 1e300, str(value)]
    if isinstance(value, str) and _TIMESTAMP.match(value):
        return [*NASTY_TIMESTAMPS, value.replace("Z", "+14:00"), value.replace("Z", ""), value[:10]]
    if isinstance(value, str) and _UUID.match(value):
        return [*NASTY_IDS, value.upper(), value.replace("-", ""), value[:-1]]
    if isinstance(value, str):
        return (SHORT_TEXT if short else NASTY_TEXT) + [value + value, value + "\x00", value.upper(), " " + value]
    return [None, [], {}, "x", 1, [value], {"value": value}]


def similar(value: Any) -> st.SearchStrategy[Any]:
    extra: st.SearchStrategy[Any] = st.nothing()
    if isinstance(value, str) and _TIMESTAMP.match(value):
        extra = st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())
    elif isinstance(value, str):
        extra = st.text(max_size=80)
    elif isinstance(value, (dict, list)):
        extra = json_values
    return st.sampled_from(similar_values(value)).map(copy.deepcopy) | extra


def put(document: Any, path: tuple, value: Any) -> Any:
    """A copy of ``document`` with the value at ``path`` replaced."""
    document = copy.deepcopy(document)
    _parent(document, path)[path[-1]] = value
    return document


def paths(document: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key and list index in a JSON document, as paths from the root."""
    found: list[tuple] = []
    if isinstance(document, dict):
        for key, value in document.items():
            found.append((*prefix, key))
            found += paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found.append((*prefix, index))
            found += paths(value, (*prefix, index))
    return found


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """``(weight, strategy)`` pairs: a strategy picked in proportion to its weight (one_of
    weighs its branches alike, even when the same one is listed twice)."""
    picks = [index for index, (weight, _) in enumerate(choices) for _ in range(weight)]
    return st.sampled_from(picks).flatmap(lambda index: choices[index][1])


def mostly(valid: st.SearchStrategy[Any], nasty: st.SearchStrategy[Any], odds: int = 6) -> st.SearchStrategy[Any]:
    """``valid`` ``odds`` times out of ``odds + 1``: a body with one or two bad fields reaches
    the checks behind the first one."""
    return weighted((odds, valid), (1, nasty))


def kind(value: Any) -> str:
    if isinstance(value, str):
        return "timestamp" if _TIMESTAMP.match(value) else "id" if _UUID.match(value) else "text"
    return type(value).__name__


def _parent(document: Any, path: tuple) -> Any:
    for step in path[:-1]:
        document = document[step]
    return document


@st.composite
def mutated(draw: st.DrawFn, document: Any, *, keep: tuple[str, ...] = (), max_changes: int = 3) -> Any:
    """A copy of ``document`` with 1..max_changes random changes. Paths starting with a key in
    ``keep`` are left alone (e.g. the message type, so the damage reaches the body's schema)."""
    document = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, max_changes))):
        candidates = [p for p in paths(document) if not (p and p[0] in keep)] or [()]
        if draw(st.booleans()):  # first a kind of value (timestamp, id, int, ...), then one of that kind
            kinds = sorted({kind(_parent(document, p)[p[-1]]) for p in candidates if p})
            if kinds:
                wanted = draw(st.sampled_from(kinds))
                candidates = [p for p in candidates if p and kind(_parent(document, p)[p[-1]]) == wanted]
        path = draw(st.sampled_from(candidates))
        action = draw(st.sampled_from(["similar", "similar", "similar", "set", "drop", "add", "wrap", "stringify"]))
        if path == ():
            return draw(json_values)
        parent = _parent(document, path)
        if action == "similar":
            parent[path[-1]] = draw(similar(parent[path[-1]]))
        elif action == "set":
            parent[path[-1]] = draw(json_values)
        elif action == "drop":
            del parent[path[-1]]
        elif action == "add":
            target = parent[path[-1]] if isinstance(parent[path[-1]], (dict, list)) else parent
            if isinstance(target, dict):
                target[draw(st.text(max_size=12) | st.sampled_from(["extra", "v", "id", "body"]))] = draw(json_values)
            else:
                target.append(draw(json_values))
        elif action == "wrap":
            parent[path[-1]] = draw(st.sampled_from([[parent[path[-1]]], {"value": parent[path[-1]]}]))
        else:
            parent[path[-1]] = json.dumps(parent[path[-1]])
    return document


def dumps(document: Any, *, ascii_only: bool = False) -> bytes:
    """Compact JSON as a peer might send it; NaN/Infinity come out as the non-JSON words."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=ascii_only, allow_nan=True).encode(
        "utf-8", "surrogatepass"
    )


@st.composite
def damaged(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` as it is, or cut short, with bytes inserted, or a value swapped for deep nesting."""
    how = draw(st.sampled_from(["none", "none", "cut", "insert", "nest", "digits", "bom", "dup"]))
    at = draw(st.integers(0, len(data)))
    if how == "cut":
        return data[:at]
    if how == "insert":
        return (
            data[:at]
            + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\n", b'"', b"}", b"\\"]))
            + data[at:]
        )
    if how in ("nest", "digits"):
        colon = data.find(b":", at)
        if colon < 0:
            return data
        end = data.find(b",", colon)
        end = len(data) - 1 if end < 0 else end
        depth = draw(st.sampled_from([64, 600, 5000]))
        filler = b"[" * depth + b"]" * depth if how == "nest" else b"9" * draw(st.sampled_from([20, 4400, 6000]))
        return data[: colon + 1] + filler + data[end:]
    if how == "bom":
        return b"\xef\xbb\xbf" + data
    if how == "dup" and data.startswith(b"{"):
        return b'{"v":1,' + data[1:]
    return data
