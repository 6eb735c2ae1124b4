"""What a decoded ESC/POS stream printed, element by element."""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

from drivers.receipt.document import Align


@dataclass(frozen=True)
class TextRun:
    text: str
    bold: bool = False
    underline: int = 0
    width: int = 1
    height: int = 1
    font: str = "a"
    invert: bool = False


@dataclass
class PrintedLine:
    runs: list[TextRun]
    align: Align = Align.LEFT

    @property
    def text(self) -> str:
        return "".join(run.text for run in self.runs)


@dataclass
class PrintedImage:
    bitmap: Image.Image  # mode "1", set bits are dots
    align: Align = Align.LEFT


@dataclass
class PrintedQr:
    data: str
    module_size: int = 3
    error_correction: str = "L"
    align: Align = Align.LEFT


@dataclass
class PrintedBarcode:
    symbology: str
    data: str
    height: int = 162
    module_width: int = 3
    text_position: str = "off"
    align: Align = Align.LEFT


@dataclass
class PaperFeed:
    dots: int


@dataclass
class PaperCut:
    partial: bool = False


@dataclass
class DrawerPulse:
    pin: int
    on_ms: int
    off_ms: int
    realtime: bool = False


@dataclass
class StatusQuery:
    n: int


Element = PrintedLine | PrintedImage | PrintedQr | PrintedBarcode | PaperFeed | PaperCut | DrawerPulse


@dataclass
class Page:
    """Everything printed between two cuts."""

    elements: list[Element] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any(isinstance(e, (PrintedLine, PrintedImage, PrintedQr, PrintedBarcode)) for e in self.elements)

    @property
    def drawer_pulses(self) -> list[DrawerPulse]:
        return [e for e in self.elements if isinstance(e, DrawerPulse)]
