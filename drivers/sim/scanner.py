"""A virtual serial barcode scanner on a pseudo-terminal.

In-process::

    with VirtualSerialScanner(suffix=b"\\r\\n") as sim:
        scanner = open_scanner(f"serial://{sim.path}")
        sim.scan("4006381333931")

As a process (for the demo)::

    python -m drivers.sim.scanner --path-file /tmp/scanner.path --suffix '\\r\\n'

then every line written to its stdin is "scanned" (``quit`` ends it).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import threading
import tty
from pathlib import Path

from drivers.urls import to_bytes

logger = logging.getLogger(__name__)


class VirtualSerialScanner:
    def __init__(self, *, prefix: bytes = b"", suffix: bytes = b"\r\n", encoding: str = "utf-8") -> None:
        self.prefix, self.suffix, self.encoding = prefix, suffix, encoding
        self._master: int | None = None
        self._slave: int | None = None
        self.path: str | None = None
        self.scanned: list[str] = []

    def start(self) -> VirtualSerialScanner:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # raw from the start: no echo, no CR->LF translation before the reader opens it
        self.path = os.ttyname(self._slave)
        logger.info("virtual scanner on %s", self.path)
        return self

    def scan(self, code: str | bytes) -> None:
        """Send one code framed with the configured prefix and suffix."""
        payload = code if isinstance(code, bytes) else code.encode(self.encoding)
        self.send_raw(self.prefix + payload + self.suffix)
        self.scanned.append(code if isinstance(code, str) else code.decode(self.encoding, "replace"))

    def send_raw(self, data: bytes) -> None:
        if self._master is None:
            raise RuntimeError("virtual scanner is not started")
        view = memoryview(data)
        while view:  # a large write may be taken in parts
            view = view[os.write(self._master, view) :]

    def stop(self) -> None:
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None

    def __enter__(self) -> VirtualSerialScanner:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Virtual serial barcode scanner on a pseudo-terminal")
    parser.add_argument("--path-file", help="write the pty path here")
    parser.add_argument("--prefix", default="", help="bytes before each code (escapes like \\x02 allowed)")
    parser.add_argument("--suffix", default="\\r\\n", help="bytes after each code")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    scanner = VirtualSerialScanner(prefix=to_bytes(args.prefix), suffix=to_bytes(args.suffix)).start()
    if args.path_file:
        assert scanner.path is not None  # start() opened the pty
        Path(args.path_file).write_text(scanner.path)
    try:
        for line in sys.stdin:
            code = line.rstrip("\r\n")
            if code == "quit":
                break
            if code:
                scanner.scan(code)
        else:
            threading.Event().wait()  # stdin closed: keep the pty alive until killed
    except KeyboardInterrupt:
        pass
    finally:
        scanner.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
