"""Incremental ESC/POS decoder: bytes in, printed elements and real-time requests out.

It understands what kassa and python-escpos emit (text modes, code pages
switched mid-line, Kanji mode on and off, raster and column images, native QR and barcodes, cuts, drawer pulses) and
answers nothing itself: real-time requests (``DLE EOT n``) come back as
:class:`StatusQuery` events for the caller (the virtual printer) to answer.
Unknown commands are skipped with a debug log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from PIL import Image

from drivers.preview.model import (
    DrawerPulse,
    Page,
    PaperCut,
    PaperFeed,
    PrintedBarcode,
    PrintedImage,
    PrintedLine,
    PrintedQr,
    StatusQuery,
    TextRun,
)
from drivers.printers.profile import PrinterProfile, load_profile
from drivers.receipt.codepages import CodePage
from drivers.receipt.document import Align

logger = logging.getLogger(__name__)

ESC, GS, DLE, FS = 0x1B, 0x1D, 0x10, 0x1C
LINE_DOTS = 30  # default line spacing, dots
_ALIGNS = {0: Align.LEFT, 1: Align.CENTER, 2: Align.RIGHT, 48: Align.LEFT, 49: Align.CENTER, 50: Align.RIGHT}
_HRI = {0: "off", 1: "above", 2: "below", 3: "both", 48: "off", 49: "above", 50: "below", 51: "both"}
_BARCODE_NAMES = {
    0: "UPC-A",
    1: "UPC-E",
    2: "EAN13",
    3: "EAN8",
    4: "CODE39",
    5: "ITF",
    6: "CODABAR",
    65: "UPC-A",
    66: "UPC-E",
    67: "EAN13",
    68: "EAN8",
    69: "CODE39",
    70: "ITF",
    71: "CODABAR",
    72: "CODE93",
    73: "CODE128",
    74: "GS1-128",
}
# ESC commands with a fixed number of parameter bytes
_ESC_FIXED = {
    ord(c): n
    for c, n in {
        "@": 0,
        "2": 0,
        "!": 1,
        "E": 1,
        "-": 1,
        "M": 1,
        "a": 1,
        "t": 1,
        "d": 1,
        "J": 1,
        "3": 1,
        "G": 1,
        "{": 1,
        "r": 1,
        "V": 1,
        "U": 1,
        "=": 1,
        "R": 1,
        " ": 1,
        "p": 3,
        "B": 2,
        "$": 2,
        "\\": 2,
        "K": 1,
        "e": 1,
        "S": 0,
        "L": 0,
        "T": 1,
        "i": 0,
        "m": 0,
    }.items()
}
_GS_FIXED = {
    ord(c): n
    for c, n in {
        "!": 1,
        "B": 1,
        "h": 1,
        "w": 1,
        "f": 1,
        "H": 1,
        "b": 1,
        "|": 1,
        "L": 2,
        "W": 2,
        "P": 2,
        "a": 1,
        "r": 1,
        "I": 1,
        "^": 3,
        "$": 2,
        "\\": 2,
        "T": 1,
    }.items()
}


class _Incomplete(Exception):
    """The buffer ends inside a command; wait for more bytes."""


# what the decoder hands back to the caller as soon as it is seen
RealtimeEvent = StatusQuery | DrawerPulse | PaperCut


@dataclass
class _BarcodeSettings:  # GS h, GS w, GS H
    height: int = 162
    width: int = 3
    hri: str = "off"


@dataclass
class _QrSettings:  # GS ( k
    size: int = 3
    ec: str = "L"
    data: bytes = b""


class EscposDecoder:
    def __init__(self, profile: PrinterProfile | None = None) -> None:
        self.profile = profile or load_profile("default")
        self._pages_by_index = {page.index: page for page in self.profile.code_pages}
        self._buffer = bytearray()
        self.page = Page()
        self.finished_pages: list[Page] = []  # one per cut
        self._reset()

    def _reset(self) -> None:
        self.bold = False
        self.underline = 0
        self.width = 1
        self.height = 1
        self.font = "a"
        self.invert = False
        self.align = Align.LEFT
        self.code_page: CodePage | None = self._pages_by_index.get(0)
        # a model that may power on in Chinese mode does so here, so a missing FS . shows
        self.kanji = self.profile.cancel_kanji
        self.line_dots = LINE_DOTS
        self.barcode = _BarcodeSettings()
        self.qr = _QrSettings()
        self._stored_graphics: Image.Image | None = None  # GS ( L fn 112, printed by fn 50
        self._runs: list[TextRun] = []
        self._pending = bytearray()
        self._line_had_graphics = False

    # -- public API ---------------------------------------------------------------

    def feed(self, data: bytes) -> list[RealtimeEvent]:
        """Consume bytes; return real-time events (StatusQuery, DrawerPulse, PaperCut) seen in them."""
        self._buffer += data
        events: list[RealtimeEvent] = []
        position = 0
        buffer = self._buffer
        while position < len(buffer):
            try:
                position = self._step(buffer, position, events)
            except _Incomplete:
                break
        del buffer[:position]
        return events

    def take_page(self) -> Page:
        """The current (uncut) page, flushing a partial line, and start a new one."""
        self._flush_line(force=False)
        page, self.page = self.page, Page()
        return page

    def take_finished(self) -> list[Page]:
        """Pages completed by a cut since the last call."""
        pages, self.finished_pages = self.finished_pages, []
        return pages

    def take_all(self) -> Page:
        """Everything decoded so far, cut or not, as one page."""
        elements = [e for page in self.take_finished() for e in page.elements]
        return Page(elements + self.take_page().elements)

    # -- text -----------------------------------------------------------------------

    def _flush_run(self) -> None:
        if self._pending:
            if self.kanji:  # two-byte GB18030 characters, as a Chinese-mode printer reads them
                text = self._pending.decode("gb18030", "replace")
            elif self.code_page:
                text = self.code_page.decode(bytes(self._pending))
            else:
                text = self._pending.decode("latin-1")
            self._runs.append(TextRun(text, self.bold, self.underline, self.width, self.height, self.font, self.invert))
            self._pending.clear()

    def _flush_line(self, force: bool) -> None:
        self._flush_run()
        if self._runs or (force and not self._line_had_graphics):
            self.page.elements.append(PrintedLine(self._runs, self.align))
        self._runs = []
        self._line_had_graphics = False

    def _style_change(self) -> None:
        self._flush_run()

    # -- the parser -----------------------------------------------------------------

    @staticmethod
    def _need(buffer: bytearray, end: int) -> None:
        if end > len(buffer):
            raise _Incomplete

    def _step(self, buffer: bytearray, i: int, events: list[RealtimeEvent]) -> int:
        byte = buffer[i]
        if byte >= 0x20:
            self._pending.append(byte)
            return i + 1
        if byte == 0x0A:
            self._flush_line(force=True)
            return i + 1
        if byte == 0x09:
            self._pending += b"    "
            return i + 1
        if byte == 0x0C:
            self._flush_line(force=False)
            return i + 1
        if byte == ESC:
            return self._esc(buffer, i, events)
        if byte == GS:
            return self._gs(buffer, i, events)
        if byte == DLE:
            return self._dle(buffer, i, events)
        if byte == FS:
            return self._fs(buffer, i)
        return i + 1  # CR and other controls print nothing

    def _esc(self, buffer: bytearray, i: int, events: list[RealtimeEvent]) -> int:
        self._need(buffer, i + 2)
        command = buffer[i + 1]
        if command == ord("*"):
            return self._column_image(buffer, i)
        if command == ord("D"):  # tab stops, NUL-terminated
            end = buffer.find(b"\x00", i + 2)
            if end < 0:
                raise _Incomplete
            return end + 1
        if command == ord("c"):
            self._need(buffer, i + 4)
            return i + 4
        count = _ESC_FIXED.get(command)
        if count is None:
            logger.debug("unknown ESC 0x%02x skipped", command)
            return i + 2
        self._need(buffer, i + 2 + count)
        args = buffer[i + 2 : i + 2 + count]
        self._apply_esc(chr(command), args, events)
        return i + 2 + count

    def _apply_esc(self, command: str, args: bytearray, events: list[RealtimeEvent]) -> None:
        value = args[0] if args else 0
        if command == "@":
            self._flush_line(force=False)
            self._reset()
        elif command == "!":
            self._style_change()
            self.font = "b" if value & 1 else "a"
            self.bold = bool(value & 8)
            self.height = 2 if value & 16 else 1
            self.width = 2 if value & 32 else 1
            self.underline = 1 if value & 128 else 0
        elif command == "E":
            self._style_change()
            self.bold = bool(value & 1)
        elif command == "-":
            self._style_change()
            self.underline = value % 48 if value >= 48 else value
        elif command == "M":
            self._style_change()
            self.font = "b" if value in (1, 49) else "a"
        elif command == "a":
            self.align = _ALIGNS.get(value, Align.LEFT)
        elif command == "t":
            self._style_change()
            self.code_page = self._pages_by_index.get(value)
            if self.code_page is None:
                logger.debug("code page %d not in profile %s", value, self.profile.name)
        elif command == "d":
            self._flush_line(force=False)
            self.page.elements.append(PaperFeed(value * self.line_dots))
        elif command == "J":
            self._flush_line(force=False)
            self.page.elements.append(PaperFeed(value))
        elif command == "3":
            self.line_dots = value
        elif command == "2":
            self.line_dots = LINE_DOTS
        elif command == "p":
            pulse = DrawerPulse(pin=2 if args[0] in (0, 48) else 5, on_ms=args[1] * 2, off_ms=args[2] * 2)
            self.page.elements.append(pulse)
            events.append(pulse)

    def _gs(self, buffer: bytearray, i: int, events: list[RealtimeEvent]) -> int:
        self._need(buffer, i + 2)
        command = buffer[i + 1]
        if command == ord("V"):
            self._need(buffer, i + 3)
            mode = buffer[i + 2]
            length = 4 if mode in (65, 66, 97, 98, 103, 104) else 3
            self._need(buffer, i + length)
            self._flush_line(force=False)
            cut = PaperCut(partial=mode in (1, 49, 66, 98, 104))
            self.page.elements.append(cut)
            self.finished_pages.append(self.page)
            self.page = Page()
            events.append(cut)
            return i + length
        if command == ord("k"):
            return self._barcode(buffer, i)
        if command == ord("v"):
            return self._raster(buffer, i)
        if command == ord("("):
            return self._gs_paren(buffer, i)
        if command == ord("8"):  # GS 8 L p1 p2 p3 p4 m fn ...: large graphics, skipped
            self._need(buffer, i + 7)
            return i + 7 + int.from_bytes(buffer[i + 3 : i + 7], "little")
        count = _GS_FIXED.get(command)
        if count is None:
            logger.debug("unknown GS 0x%02x skipped", command)
            return i + 2
        self._need(buffer, i + 2 + count)
        value = buffer[i + 2]
        name = chr(command)
        if name == "!":
            self._style_change()
            self.width, self.height = (value >> 4) + 1, (value & 0x0F) + 1
        elif name == "B":
            self._style_change()
            self.invert = bool(value & 1)
        elif name == "h":
            self.barcode.height = value
        elif name == "w":
            self.barcode.width = value
        elif name == "H":
            self.barcode.hri = _HRI.get(value, "off")
        return i + 2 + count

    def _dle(self, buffer: bytearray, i: int, events: list[RealtimeEvent]) -> int:
        self._need(buffer, i + 2)
        command = buffer[i + 1]
        if command == 0x04:  # DLE EOT n: real-time status request
            self._need(buffer, i + 3)
            events.append(StatusQuery(buffer[i + 2]))
            return i + 3
        if command == 0x14:  # DLE DC4 fn m t
            self._need(buffer, i + 5)
            if buffer[i + 2] == 1:
                pulse = DrawerPulse(
                    pin=2 if buffer[i + 3] == 0 else 5,
                    on_ms=buffer[i + 4] * 100,
                    off_ms=buffer[i + 4] * 100,
                    realtime=True,
                )
                self.page.elements.append(pulse)
                events.append(pulse)
            return i + 5
        if command == 0x05:  # DLE ENQ n
            self._need(buffer, i + 3)
            return i + 3
        return i + 2

    def _fs(self, buffer: bytearray, i: int) -> int:
        self._need(buffer, i + 2)
        command = buffer[i + 1]
        if command == ord("p"):
            self._need(buffer, i + 4)
            return i + 4
        if command == ord("C") or command == ord("!"):
            self._need(buffer, i + 3)
            return i + 3
        if command in (ord("&"), ord(".")):  # select / cancel Kanji (Chinese) character mode
            self._style_change()
            self.kanji = command == ord("&")
        return i + 2

    # -- graphics -------------------------------------------------------------------

    def _raster(self, buffer: bytearray, i: int) -> int:
        self._need(buffer, i + 8)
        width_bytes = int.from_bytes(buffer[i + 4 : i + 6], "little")
        rows = int.from_bytes(buffer[i + 6 : i + 8], "little")
        end = i + 8 + width_bytes * rows
        self._need(buffer, end)
        self._flush_line(force=False)
        if width_bytes and rows:
            bitmap = Image.frombytes("1", (width_bytes * 8, rows), bytes(buffer[i + 8 : end]))
            self.page.elements.append(PrintedImage(bitmap, self.align))
        return end

    def _column_image(self, buffer: bytearray, i: int) -> int:
        self._need(buffer, i + 5)
        mode = buffer[i + 2]
        columns = int.from_bytes(buffer[i + 3 : i + 5], "little")
        bytes_per_column = 3 if mode in (32, 33) else 1
        end = i + 5 + columns * bytes_per_column
        self._need(buffer, end)
        data = buffer[i + 5 : end]
        height = bytes_per_column * 8
        # column data is top-to-bottom per column; build it transposed, then turn it upright
        transposed = Image.frombytes("1", (height, columns), bytes(data))
        bitmap = transposed.transpose(Image.Transpose.TRANSPOSE)
        self._flush_run()
        self.page.elements.append(PrintedImage(bitmap, self.align))
        self._line_had_graphics = True
        return end

    def _barcode(self, buffer: bytearray, i: int) -> int:
        self._need(buffer, i + 3)
        kind = buffer[i + 2]
        if kind <= 6:
            end = buffer.find(b"\x00", i + 3)
            if end < 0:
                raise _Incomplete
            data, next_position = bytes(buffer[i + 3 : end]), end + 1
        else:
            self._need(buffer, i + 4)
            length = buffer[i + 3]
            self._need(buffer, i + 4 + length)
            data, next_position = bytes(buffer[i + 4 : i + 4 + length]), i + 4 + length
        text = data.decode("ascii", "replace")
        if kind == 73 and text.startswith("{"):
            text = text[2:].replace("{{", "{")
        self._flush_line(force=False)
        self.page.elements.append(
            PrintedBarcode(
                _BARCODE_NAMES.get(kind, f"type {kind}"),
                text,
                self.barcode.height,
                self.barcode.width,
                self.barcode.hri,
                self.align,
            )
        )
        return next_position

    def _gs_paren(self, buffer: bytearray, i: int) -> int:
        self._need(buffer, i + 5)
        function = chr(buffer[i + 2])
        length = int.from_bytes(buffer[i + 3 : i + 5], "little")
        end = i + 5 + length
        self._need(buffer, end)
        body = bytes(buffer[i + 5 : end])
        if function == "k" and len(body) >= 2 and body[0] == 0x31:
            self._qr_command(body)
        elif function == "L" and len(body) >= 2:
            self._graphics_command(body)
        return end

    def _qr_command(self, body: bytes) -> None:
        fn = chr(body[1])
        if fn == "C":
            self.qr.size = body[2]
        elif fn == "E":
            self.qr.ec = "LMQH"[(body[2] - 48) % 4]
        elif fn == "P":
            self.qr.data = body[3:]
        elif fn == "Q":
            self._flush_line(force=False)
            data = self.qr.data.decode("utf-8", "replace")
            self.page.elements.append(PrintedQr(data, self.qr.size, self.qr.ec, self.align))

    def _graphics_command(self, body: bytes) -> None:
        fn = body[1]
        if fn == 112 and len(body) >= 10:  # store raster graphics
            width = int.from_bytes(body[6:8], "little")
            height = int.from_bytes(body[8:10], "little")
            data = body[10 : 10 + ((width + 7) // 8) * height]
            self._stored_graphics = Image.frombytes("1", (width, height), data)
        elif fn == 50 and self._stored_graphics is not None:  # print stored graphics
            self._flush_line(force=False)
            self.page.elements.append(PrintedImage(self._stored_graphics, self.align))
            self._stored_graphics = None
