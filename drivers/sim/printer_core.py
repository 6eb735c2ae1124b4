"""The brain of the virtual printer, shared by its TCP and USB front ends.

It decodes the ESC/POS stream, answers ``DLE EOT`` from its simulated
sensors, pulses an attached virtual drawer, and turns each cut into a
receipt (PNG and text preview). While it cannot print (paper out, cover
open) it still answers status queries but drops job data, as a client that
ignored status would lose receipts.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from drivers.preview.decoder import EscposDecoder
from drivers.preview.model import DrawerPulse, Page, StatusQuery
from drivers.preview.painter import page_text, paint
from drivers.printers.profile import PrinterProfile, load_profile
from drivers.sim.drawer import VirtualDrawer

logger = logging.getLogger(__name__)


class Paper(str, enum.Enum):
    OK = "ok"
    NEAR_END = "near-end"
    OUT = "out"


@dataclass
class CapturedReceipt:
    number: int
    text: str
    image: Image.Image
    raw: bytes
    drawer_pulses: list[DrawerPulse]
    png_path: Path | None = None
    txt_path: Path | None = None

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()


@dataclass
class SensorState:
    paper: Paper = Paper.OK
    cover_open: bool = False
    cutter_error: bool = False

    @property
    def can_print(self) -> bool:
        return self.paper is not Paper.OUT and not self.cover_open and not self.cutter_error


class VirtualPrinterCore:
    def __init__(
        self,
        profile: PrinterProfile | str | None = None,
        *,
        preview_dir: str | Path | None = None,
        drawer: VirtualDrawer | None = None,
    ) -> None:
        self.profile = load_profile(profile) if isinstance(profile, str) else (profile or load_profile("default"))
        self.preview_dir = Path(preview_dir) if preview_dir else None
        self.drawer = drawer
        self.sensors = SensorState()
        self.receipts: list[CapturedReceipt] = []
        self.dropped_bytes = 0
        self.status_queries = 0
        self._changed = threading.Condition()

    # -- sensors --------------------------------------------------------------------------

    def status_byte(self, n: int) -> int:
        s = self.sensors
        value = 0x12
        if n == 1:
            if self.drawer is not None and self.drawer.pin_high:
                value |= 0x04
            if not s.can_print:
                value |= 0x08
        elif n == 2:
            value |= (0x04 if s.cover_open else 0) | (0x20 if s.paper is Paper.OUT else 0)
            value |= 0x40 if s.cutter_error else 0
        elif n == 3:
            value |= 0x08 if s.cutter_error else 0
        elif n == 4:
            value |= {Paper.OK: 0x00, Paper.NEAR_END: 0x0C, Paper.OUT: 0x6C}[s.paper]
        return value

    # -- streams --------------------------------------------------------------------------

    def open_stream(self) -> PrinterStream:
        return PrinterStream(self)

    def _finish_page(self, page: Page, raw: bytes) -> CapturedReceipt | None:
        if page.empty:
            return None
        with self._changed:
            number = len(self.receipts) + 1
            receipt = CapturedReceipt(
                number,
                page_text(page, self.profile.columns()),
                paint(page, self.profile.width_px),
                raw,
                page.drawer_pulses,
            )
            if self.preview_dir is not None:
                self.preview_dir.mkdir(parents=True, exist_ok=True)
                receipt.png_path = self.preview_dir / f"receipt-{number:04d}.png"
                receipt.txt_path = self.preview_dir / f"receipt-{number:04d}.txt"
                receipt.image.save(receipt.png_path)
                receipt.txt_path.write_text(receipt.text, encoding="utf-8")
            self.receipts.append(receipt)
            self._changed.notify_all()
        logger.info("printed receipt %d (%d lines)", number, len(receipt.lines))
        return receipt

    def wait_for_receipts(self, count: int, timeout: float) -> list[CapturedReceipt]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.receipts) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            return list(self.receipts)


class PrinterStream:
    """One connection's worth of bytes (a TCP session or a USB claim)."""

    def __init__(self, core: VirtualPrinterCore) -> None:
        self.core = core
        self.decoder = EscposDecoder(core.profile)
        self._raw = bytearray()

    def feed(self, data: bytes) -> bytes:
        """Consume bytes from the host; return the printer's answers."""
        core = self.core
        can_print = core.sensors.can_print
        answers = bytearray()
        self._raw += data
        for event in self.decoder.feed(data):
            if isinstance(event, StatusQuery):
                core.status_queries += 1
                answers.append(core.status_byte(event.n))
            elif isinstance(event, DrawerPulse) and core.drawer is not None and (can_print or event.realtime):
                core.drawer.kick(event.pin, event.on_ms)
        finished = self.decoder.take_finished()
        if not can_print:
            dropped = [*finished, self.decoder.take_page()]
            if any(not page.empty for page in dropped):
                core.dropped_bytes += len(self._raw)
                logger.warning("printer cannot print (%s): job data dropped", core.sensors)
            self._raw.clear()
            return bytes(answers)
        for page in finished:
            core._finish_page(page, bytes(self._raw))
            self._raw.clear()
        return bytes(answers)

    def close(self) -> None:
        """End of stream: what was printed without a cut is still a receipt."""
        if self.core.sensors.can_print:
            self.core._finish_page(self.decoder.take_page(), bytes(self._raw))
        self._raw.clear()
