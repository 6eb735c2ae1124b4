"""QR codes and barcodes as bitmaps, for printers without native support and for previews."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

# qrcode's ERROR_CORRECT_* constants, written out so that qrcode is imported only when a QR code is drawn
_QR_LEVELS = {"L": 1, "M": 0, "Q": 3, "H": 2}
# python-barcode names for the symbologies the document model allows
_BARCODE_NAMES = {
    "EAN13": "ean13",
    "EAN8": "ean8",
    "UPC-A": "upca",
    "CODE39": "code39",
    "CODE128": "code128",
    "ITF": "itf",
}


@lru_cache(maxsize=128)
def qr_bitmap(data: str, module_size: int, error_correction: str = "M") -> Image.Image:
    """Mode "1" image, set bits are dark modules, with a one-module quiet zone."""
    # imported on first use: only printers without native QR codes and previews draw them (agent footprint)
    import qrcode
    from PIL import Image

    code = qrcode.QRCode(box_size=1, border=1, error_correction=_QR_LEVELS[error_correction])
    code.add_data(data)
    code.make(fit=True)
    matrix = code.get_matrix()
    size = len(matrix)
    image = Image.new("1", (size, size), 0)
    image.putdata([255 if dark else 0 for row in matrix for dark in row])
    return image.resize((size * module_size, size * module_size), Image.Resampling.NEAREST)


@lru_cache(maxsize=128)
def barcode_modules(symbology: str, data: str) -> str:
    """The bar pattern as a string of '1' (bar) and '0' (space) modules."""
    import barcode  # on first use, like qrcode above

    name = _BARCODE_NAMES[symbology]
    if name == "code39":
        encoder = barcode.get_barcode_class(name)(data.strip("*"), add_checksum=False)
    else:
        encoder = barcode.get_barcode_class(name)(data)
    return "".join(encoder.build())


def barcode_bitmap(symbology: str, data: str, module_width: int, height: int) -> Image.Image:
    # Pillow imported on first use: only logos, raster fallbacks and previews need it (agent footprint)
    from PIL import Image, ImageDraw

    modules = barcode_modules(symbology, data)
    image = Image.new("1", (len(modules) * module_width, height), 0)
    draw = ImageDraw.Draw(image)
    for index, module in enumerate(modules):
        if module == "1":
            x = index * module_width
            draw.rectangle((x, 0, x + module_width - 1, height - 1), fill=255)
    return image
