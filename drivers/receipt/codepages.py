"""Code pages from python-escpos's capability data, built once and cached.

A :class:`CodePage` turns text into single-byte printer text with one
``str.translate`` plus ``encode('latin-1')`` (both in C), which is what keeps
rendering fast; MagicEncode in python-escpos looks characters up one by one.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from escpos.capabilities import CAPABILITIES

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class CodePage:
    name: str
    index: int  # the n of ESC t n
    charset: frozenset[str]  # non-ASCII characters this page can encode
    encode_table: dict[int, str]  # ord(char) -> chr(byte) for str.translate
    decode_table: tuple[str | None, ...]  # byte - 128 -> char, None if undefined

    def can_encode(self, text: str) -> bool:
        charset = self.charset
        return all(char < "\x80" or char in charset for char in text)

    def encode(self, text: str) -> bytes:
        return text.translate(self.encode_table).encode("latin-1")

    def decode(self, data: bytes) -> str:
        table = self.decode_table
        return "".join(chr(b) if b < 0x80 else (table[b - 0x80] or "\ufffd") for b in data)

    def __repr__(self) -> str:
        return f"CodePage({self.name!r}, index={self.index})"


def _upper_half(name: str) -> list[str | None] | None:
    """Characters at bytes 0x80..0xFF, or None when python-escpos has no mapping data."""
    encoding = CAPABILITIES["encodings"].get(name)
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


@lru_cache(maxsize=None)
def get_code_page(name: str, index: int) -> CodePage | None:
    chars = _upper_half(name)
    if chars is None:
        return None
    encode_table: dict[int, str] = {}
    decode_table: list[str | None] = []
    for offset, char in enumerate(chars):
        usable = char is not None and len(char) == 1 and char >= "\x80" and unicodedata.category(char) != "Cc"
        decode_table.append(char if usable else None)
        if usable and ord(char) not in encode_table:
            encode_table[ord(char)] = chr(0x80 + offset)
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
