"""A virtual network receipt printer (raw TCP, like port 9100).

In-process::

    with VirtualPrinter(preview_dir=tmp) as sim:      # binds 127.0.0.1 on a free port
        printer = open_printer(sim.url)
        sim.set_paper(Paper.OUT) ...

As a process (for the demo)::

    python -m drivers.sim.printer --port 0 --preview-dir /tmp/receipts --port-file /tmp/printer.port

Commands on stdin, one per line: ``paper ok|near-end|out``, ``cover open|closed``,
``offline silent|refuse``, ``online``, ``drawer open|close``, ``quit``.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import logging
import socket
import sys
import threading
from pathlib import Path

from drivers.sim.drawer import VirtualDrawer
from drivers.sim.printer_core import CapturedReceipt, Paper, VirtualPrinterCore

logger = logging.getLogger(__name__)


class Offline(str, enum.Enum):
    ONLINE = "online"
    SILENT = "silent"  # accepts connections and bytes, never answers
    REFUSE = "refuse"  # not listening: connections are refused


class VirtualPrinter:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        preview_dir: str | Path | None = None,
        profile: str = "default",
        drawer: VirtualDrawer | None = None,
    ) -> None:
        self.host = host
        self.drawer = drawer if drawer is not None else VirtualDrawer()
        self.core = VirtualPrinterCore(profile, preview_dir=preview_dir, drawer=self.drawer)
        self.offline = Offline.ONLINE
        self._requested_port = port
        self.port: int | None = None
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> VirtualPrinter:
        self._stop.clear()
        self._listen()
        return self

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port or self._requested_port))
        listener.listen(8)
        listener.settimeout(0.1)
        self.port = listener.getsockname()[1]
        self._listener = listener
        thread = threading.Thread(
            target=self._accept_loop, args=(listener,), name=f"sim-printer-{self.port}", daemon=True
        )
        self._threads.append(thread)
        thread.start()
        logger.info("virtual printer listening on %s", self.url)

    def stop(self) -> None:
        self._stop.set()
        self._close_listener()
        with self._lock:
            for connection in list(self._connections):
                _shutdown(connection)
        for thread in self._threads:
            thread.join(2)
        self._threads.clear()

    def __enter__(self) -> VirtualPrinter:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    # -- knobs -----------------------------------------------------------------------------

    def set_paper(self, paper: Paper | str) -> None:
        self.core.sensors.paper = Paper(paper)
        logger.info("paper: %s", self.core.sensors.paper.value)

    def set_cover(self, is_open: bool) -> None:
        self.core.sensors.cover_open = is_open
        logger.info("cover %s", "open" if is_open else "closed")

    def set_cutter_error(self, failed: bool) -> None:
        self.core.sensors.cutter_error = failed

    def go_offline(self, mode: Offline | str = Offline.SILENT) -> None:
        mode = Offline(mode)
        self.offline = mode
        if mode is Offline.REFUSE:
            self._close_listener()
            with self._lock:
                for connection in list(self._connections):
                    _shutdown(connection)
        logger.info("offline (%s)", mode.value)

    def go_online(self) -> None:
        was_refusing = self.offline is Offline.REFUSE
        self.offline = Offline.ONLINE
        if was_refusing and not self._stop.is_set():
            self._listen()
        logger.info("online")

    @property
    def receipts(self) -> list[CapturedReceipt]:
        return self.core.receipts

    def wait_for_receipts(self, count: int, timeout: float = 5.0) -> list[CapturedReceipt]:
        return self.core.wait_for_receipts(count, timeout)

    # -- serving ---------------------------------------------------------------------------

    def _close_listener(self) -> None:
        if self._listener is not None:
            # shutdown first: close() alone leaves a thread blocked in accept() holding the port open
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                self._listener.close()
            self._listener = None

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stop.is_set() and self._listener is listener:
            try:
                connection, peer = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            with self._lock:
                self._connections.add(connection)
            thread = threading.Thread(
                target=self._serve, args=(connection,), daemon=True, name=f"sim-printer-{self.port}-{peer[1]}"
            )
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def _serve(self, connection: socket.socket) -> None:
        stream = self.core.open_stream()
        try:
            connection.settimeout(0.1)
            while not self._stop.is_set():
                try:
                    data = connection.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                if self.offline is not Offline.ONLINE:
                    continue  # silent: swallow everything, answer nothing
                answers = stream.feed(data)
                if answers:
                    try:
                        connection.sendall(answers)
                    except OSError:
                        break
        except OSError:
            pass  # closed under us (going offline, stopping)
        finally:
            if self.offline is Offline.ONLINE:
                stream.close()
            with self._lock:
                self._connections.discard(connection)
            _shutdown(connection)


def _shutdown(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)
    connection.close()


def _apply_command(printer: VirtualPrinter, words: list[str]) -> bool:
    """Apply one stdin command; False means quit."""
    match words:
        case ["quit"] | ["exit"]:
            return False
        case ["paper", state]:
            printer.set_paper(state)
        case ["cover", state]:
            printer.set_cover(state == "open")
        case ["offline", mode]:
            printer.go_offline(mode)
        case ["offline"]:
            printer.go_offline()
        case ["online"]:
            printer.go_online()
        case ["drawer", "close"]:
            printer.drawer.close()
        case ["drawer", "open"]:
            printer.drawer.open()
        case _:
            logger.warning("unknown command: %s", " ".join(words))
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Virtual ESC/POS network printer")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", help="write the bound port number here")
    parser.add_argument("--preview-dir", help="write receipt-NNNN.png/.txt here")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--drawer-open-level", choices=("high", "low"), default="high")
    parser.add_argument("--drawer-auto-close", type=float, help="drawer closes by itself after N seconds")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    drawer = VirtualDrawer(open_level=args.drawer_open_level, auto_close_after=args.drawer_auto_close)
    printer = VirtualPrinter(
        args.host, args.port, preview_dir=args.preview_dir, profile=args.profile, drawer=drawer
    ).start()
    if args.port_file:
        Path(args.port_file).write_text(str(printer.port))
    try:
        for line in sys.stdin:
            words = line.lower().split()
            if words:
                try:
                    if not _apply_command(printer, words):
                        break
                except ValueError as error:
                    logger.warning("bad command %r: %s", line.strip(), error)
        else:
            threading.Event().wait()  # stdin closed: serve until killed
    except KeyboardInterrupt:
        pass
    finally:
        printer.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
