"""Code pages from python-escpos's capability data, built once and cached.

A :class:`CodePage` turns text into single-byte printer text with one
``str.translate`` plus ``encode('latin-1')`` (both in C), which is what keeps
rendering fast; MagicEncode in python-escpos looks characters up one by one.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from functools import cache

from drivers.capabilities import capabilities

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class CodePage:
    name: str
    index: int  # the n of ESC t n
    charset: frozenset[str]  # non-ASCII characters this page can encode
    encode_table: dict[int, str]  # ord(char) -> chr(byte) for str.translate
    decode_table: tuple[str | None, ...]  # byte - 128 -> char, None if undefined

    def encode(self, text: str) -> bytes:
        return text.translate(self.encode_table).encode("latin-1")

    def decode(self, data: bytes) -> str:
        table = self.decode_table
        return "".join(chr(b) if b < 0x80 else (table[b - 0x80] or "\ufffd") for b in data)

    def __repr__(self) -> str:
        return f"CodePage({self.name!r}, index={self.index})"


def _upper_half(name: str) -> list[str | None] | None:
    """Characters at bytes 0x80..0xFF, or None when python-escpos has no mapping data."""
    encoding = capabilities()["encodings"].get(name)
    if not encoding:
        return None
    if "data" in encoding:
        chars: list[str | None] = list("".join(encoding["data"]))
        if len(chars) != 128:
            return None
        # the data tables use a space for "no character here"
        return [c if c != " " else None for c in chars]
    codec = encoding.get("python_encode")
    if not codec:
        return None
    chars = []
    for byte in range(0x80, 0x100):
        try:
            chars.append(bytes([byte]).decode(codec))
        except (UnicodeDecodeError, LookupError):
            chars.append(None)
    return chars


@cache
def get_code_page(name: str, index: int) -> CodePage | None:
    chars = _upper_half(name)
    if chars is None:
        return None
    encode_table: dict[int, str] = {}
    decode_table: list[str | None] = []
    for offset, char in enumerate(chars):
        if char is not None and len(char) == 1 and char >= "\x80" and unicodedata.category(char) != "Cc":
            decode_table.append(char)
            if ord(char) not in encode_table:
                encode_table[ord(char)] = chr(0x80 + offset)
        else:
            decode_table.append(None)
    return CodePage(
        name=name,
        index=index,
        charset=frozenset(chr(o) for o in encode_table),
        encode_table=encode_table,
        decode_table=tuple(decode_table),
    )


def code_pages_for(profile_code_pages: dict[str, str], preferred: tuple[str, ...] = ()) -> tuple[CodePage, ...]:
    """Usable code pages of a profile, preferred names first, then by ESC t index."""
    by_name: dict[str, CodePage] = {}
    for index_text, name in sorted(profile_code_pages.items(), key=lambda item: int(item[0])):
        if name in by_name:
            continue
        page = get_code_page(name, int(index_text))
        if page is not None:
            by_name[name] = page
    ordered = [by_name[name] for name in preferred if name in by_name]
    missing = [name for name in preferred if name not in by_name]
    if missing:
        logger.warning("code pages %s are not available in this printer profile", ", ".join(missing))
    ordered += [page for name, page in by_name.items() if name not in preferred]
    return tuple(ordered)


# Pages nearly every ESC/POS printer has and renders right, in the order they are tried when a
# run of text needs a page: Western (with €), Cyrillic, then the power-on page. The order across
# scripts only matters for characters several scripts' pages have (€, «», –): those go Western
# unless the run around them is in another page that has them. Rarer pages that happen to hold a
# character too (PC855 has Cyrillic and «») are used only for characters none of these carries:
# they are missing or mislabelled on many printers.
COMMON_CODE_PAGES = ("CP1252", "CP858", "CP866", "CP1251", "CP437")


class CodePagePlanner:
    """Splits a line into runs, each sent in one code page.

    A run is *common* while one of the common pages (the configured ``preferred`` names, then
    :data:`COMMON_CODE_PAGES`) carries all of it. A character that some common page carries,
    but none together with the run so far, starts a new run: a « in Cyrillic text is sent from
    WPC1252 between two PC866 runs rather than moving the line to PC855. A character no common
    page carries (Greek, Baltic...) needs a rarer page anyway, so its run takes whichever page
    of the profile carries it all, lowest ``ESC t`` number first. The page already selected is
    kept whenever it may carry the run, so a receipt switches only where a character needs it.
    """

    def __init__(self, pages: tuple[CodePage, ...], preferred: tuple[str, ...] = ()) -> None:
        by_name = {page.name: page for page in pages}
        common = [by_name[name] for name in dict.fromkeys(preferred + COMMON_CODE_PAGES) if name in by_name]
        self.ranked = tuple(common) + tuple(sorted((p for p in pages if p not in common), key=lambda p: p.index))
        self._common = frozenset(common)
        self._carriers: dict[str, tuple[tuple[CodePage, ...], tuple[CodePage, ...]]] = {}

    def carriers(self, char: str) -> tuple[tuple[CodePage, ...], tuple[CodePage, ...]]:
        """(common pages, all pages) that carry ``char``, best first."""
        found = self._carriers.get(char)
        if found is None:
            every = tuple(page for page in self.ranked if char in page.charset)
            found = self._carriers[char] = (tuple(page for page in every if page in self._common), every)
        return found

    def plan(self, text: str, current: CodePage | None) -> list[tuple[CodePage, bytes]] | None:
        """``(page, bytes)`` runs for ``text``, or None when some character is in no page."""
        runs: list[tuple[tuple[CodePage, ...], int]] = []  # (pages that carry the run, where it starts)
        common: tuple[CodePage, ...] = ()  # common pages that carry the open run (empty: it needs a rarer one)
        every: tuple[CodePage, ...] | None = None  # all pages that carry it; None: no run open yet
        start = 0  # ASCII before the first non-ASCII character belongs to the first run
        for position, char in enumerate(text):
            if char < "\x80":
                continue  # ASCII is the same in every page: it stays in the run it is in
            char_common, char_every = self.carriers(char)
            if not char_every:
                return None
            if every is None:
                common, every = char_common, char_every
                continue
            if common:
                narrowed = _both(common, char_common)
                if narrowed:
                    common, every = narrowed, _both(every, char_every)
                    continue
                if not char_common:  # the character needs a rarer page: the run may move there with it
                    narrowed = _both(every, char_every)
                    if narrowed:
                        common, every = (), narrowed
                        continue
            else:
                narrowed = _both(every, char_every)
                if narrowed:
                    every = narrowed
                    continue
            runs.append((common or every, start))
            common, every, start = char_common, char_every, position
        if every is None:  # pure ASCII: any page will do
            page = current or (self.ranked[0] if self.ranked else None)
            return [(page, text.encode("ascii"))] if page else None
        runs.append((common or every, start))
        plan = []
        ends = [begin for _, begin in runs[1:]] + [len(text)]
        for (pages, begin), end in zip(runs, ends, strict=True):
            page = current if current in pages else pages[0]
            plan.append((page, page.encode(text[begin:end])))
            current = page
        return plan


def _both(pages: tuple[CodePage, ...], others: tuple[CodePage, ...]) -> tuple[CodePage, ...]:
    return tuple(page for page in pages if page in others)
