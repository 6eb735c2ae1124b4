"""Fitting text to a fixed number of character cells.

Widths are display widths: East Asian wide characters take two cells and
combining marks none, so columns still line up on paper.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from drivers.receipt.document import NO_BREAK_SPACES, Align, Column, Columns, Style, sanitize

_NO_BREAK_TO_SPACE = str.maketrans(dict.fromkeys(NO_BREAK_SPACES, " "))


def char_width(char: str) -> int:
    if char < "\u0300":
        return 1
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def display_width(text: str) -> int:
    if text.isascii():
        return len(text)
    return sum(char_width(c) for c in text)


def _split_to_width(word: str, width: int) -> list[str]:
    pieces: list[str] = []
    current: list[str] = []
    used = 0
    for char in word:
        w = char_width(char)
        if used + w > width and current:
            pieces.append("".join(current))
            current, used = [], 0
        current.append(char)
        used += w
    if current:
        pieces.append("".join(current))
    return pieces


@lru_cache(maxsize=2048)
def wrap(text: str, width: int) -> tuple[str, ...]:
    """Greedy word wrap by display width; words longer than a line are split.

    Lines break only at plain spaces: ``1\u00a0383,20\u00a0₽`` stays whole. The lines come
    back ready to print, no-break spaces turned into plain ones.
    """
    if display_width(text) <= width:
        return (text.translate(_NO_BREAK_TO_SPACE),)
    return tuple(line.translate(_NO_BREAK_TO_SPACE) for line in _wrap(text, width))


def _wrap(text: str, width: int) -> tuple[str, ...]:
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        if not word:
            continue
        candidate = f"{current} {word}" if current else word
        if display_width(candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        if display_width(word) <= width:
            current = word
        else:
            *full, current = _split_to_width(word, width)
            lines.extend(full)
    if current:
        lines.append(current)
    return tuple(lines) or ("",)


def pad(text: str, width: int, align: Align) -> str:
    gap = width - display_width(text)
    if gap <= 0:
        return text
    if align is Align.RIGHT:
        return " " * gap + text
    if align is Align.CENTER:
        left = gap // 2
        return " " * left + text + " " * (gap - left)
    return text + " " * gap


@dataclass(frozen=True)
class CellSpan:
    start: int  # first character cell
    width: int
    text: str
    align: Align


@dataclass(frozen=True)
class LaidOutLine:
    text: str  # cells padded and joined, trailing spaces removed; never wider than the line
    cells: tuple[CellSpan, ...]


def column_widths(cells: tuple[str, ...], specs: tuple[Column, ...], line_width: int) -> list[int]:
    gaps = len(cells) - 1
    available = max(len(cells), line_width - gaps)
    natural = [max(1, display_width(c)) for c in cells]
    grow = next((i for i, s in enumerate(specs) if s.grow), None)
    if grow is None:
        grow = next((i for i, s in enumerate(specs) if s.width is None), None)
    widths = [s.width if s.width is not None else natural[i] for i, s in enumerate(specs)]
    if grow is None:
        return _shrink(widths, natural, available, fixed=set(range(len(specs))))
    others = sum(w for i, w in enumerate(widths) if i != grow)
    widths[grow] = available - others
    if widths[grow] >= min(natural[grow], available // 2):
        return widths
    # the growing column keeps at least half the line; the others wrap
    widths[grow] = min(natural[grow], available // 2)
    fixed = {i for i, s in enumerate(specs) if s.width is not None} | {grow}
    return _shrink(widths, natural, available, fixed)


def _shrink(widths: list[int], natural: list[int], available: int, fixed: set[int]) -> list[int]:
    excess = sum(widths) - available
    if excess <= 0:
        return widths
    flexible = [i for i in range(len(widths)) if i not in fixed] or list(range(len(widths)))
    while excess > 0:
        widest = max(flexible, key=lambda i: widths[i])
        if widths[widest] <= 1:
            break
        widths[widest] -= 1
        excess -= 1
    return widths


def simple_row(cells: tuple[str, ...], line_width: int) -> str | None:
    """Fast path for the usual receipt row (default column specs, ASCII, fits on one line), else None."""
    used = len(cells) - 1
    for cell in cells:
        if not cell.isascii():
            return None
        used += len(cell)
    if used > line_width or not cells[0]:
        return None
    if len(cells) == 1:
        return cells[0]
    return cells[0] + " " * (line_width - used + 1) + " ".join(cells[1:])


def chosen_forms(blocks: Sequence[object], line_width: Callable[[Style], int]) -> dict[int, tuple[str, ...]]:
    """The sanitised cells each ``Columns`` block with shorter forms prints, by ``id(block)``.

    Consecutive such rows (a tax block) are one table: they all print the same form, the first
    at which every one of them fits its line, else the shortest; a table never mixes long and
    short rows. ``line_width`` gives the characters per line for a row's style.
    """
    chosen: dict[int, tuple[str, ...]] = {}
    group: list[Columns] = []
    for block in (*blocks, None):
        if isinstance(block, Columns) and block.shorter:
            group.append(block)
            continue
        if group:
            rows = [
                (
                    tuple(tuple(sanitize(c) for c in form) for form in (row.cells, *row.shorter)),
                    row.specs(),
                    line_width(row.style),
                )
                for row in group
            ]
            count = min(len(forms) for forms, _, _ in rows)
            index = next(
                (
                    i
                    for i in range(count)
                    if all(len(layout_columns(forms[i], specs, width)) == 1 for forms, specs, width in rows)
                ),
                count - 1,
            )
            chosen.update((id(row), forms[index]) for row, (forms, _, _) in zip(group, rows, strict=True))
            group = []
    return chosen


def layout_columns(cells: tuple[str, ...], specs: tuple[Column, ...], line_width: int) -> list[LaidOutLine]:
    widths = column_widths(cells, specs, line_width)
    wrapped = [wrap(cell, width) for cell, width in zip(cells, widths, strict=False)]
    starts, position = [], 0
    for width in widths:
        starts.append(position)
        position += width + 1
    lines = []
    for row in range(max(len(w) for w in wrapped)):
        spans = tuple(
            CellSpan(starts[i], widths[i], wrapped[i][row] if row < len(wrapped[i]) else "", specs[i].align)
            for i in range(len(cells))
        )
        text = " ".join(pad(span.text, span.width, span.align) for span in spans)
        lines.append(LaidOutLine(text.rstrip(" "), spans))
    return lines
