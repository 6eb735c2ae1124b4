"""What a stored print job looks like on paper: its ESC/POS bytes decoded and painted.

One code path for every viewer: ``kassactl print show`` (the ``print.show`` control method) and
the status page's receipt previews (agent/posapi/status_page.py).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from agent.hardware.component import Hardware
from agent.hardware.print_queue import PrintJob
from drivers.printers.profile import load_profile


@dataclass(frozen=True)
class JobPreview:
    job: PrintJob
    text: str
    png: bytes | None


def preview(hardware: Hardware, job_id: str, *, png: bool) -> JobPreview:
    """The job (by id or unique prefix) as text, and as a PNG when asked; unknown: PrintQueueError."""
    job, data = hardware.queue.stored(job_id)
    printer = hardware.printers.get(job.printer)
    profile = printer.profile if printer is not None else load_profile()
    # The preview decoder and painter bring Pillow: loaded by the first preview, not at every start.
    from drivers.preview.decoder import EscposDecoder
    from drivers.preview.painter import page_text, paint

    decoder = EscposDecoder(profile)
    decoder.feed(data)
    page = decoder.take_all()
    image: bytes | None = None
    if png:
        buffer = io.BytesIO()
        paint(page, profile.width_px).save(buffer, format="PNG")
        image = buffer.getvalue()
    return JobPreview(job, page_text(page, profile.columns()), image)
