"""Serial scanners on a pseudo-terminal pair, and the framing and symbology rules behind them."""

from __future__ import annotations

import queue

import pytest

from drivers import DeviceStatus, ScanEvent, Symbology, open_scanner
from drivers.scanners.events import DuplicateFilter, classify
from drivers.scanners.serial_scanner import FrameSplitter
from drivers.sim.scanner import VirtualSerialScanner


class Collector:
    def __init__(self) -> None:
        self.events: queue.Queue[ScanEvent] = queue.Queue()

    def __call__(self, event: ScanEvent) -> None:
        self.events.put(event)

    def take(self, count: int, timeout: float = 3.0) -> list[ScanEvent]:
        return [self.events.get(timeout=timeout) for _ in range(count)]

    def nothing_more(self, wait: float = 0.3) -> bool:
        try:
            self.events.get(timeout=wait)
        except queue.Empty:
            return True
        return False


@pytest.fixture
def pty_scanner():
    with VirtualSerialScanner(prefix=b"\x02", suffix=b"\r\n") as sim:
        yield sim


def start(url: str, **options):
    scanner, collector = open_scanner(url, **options), Collector()
    scanner.start(collector)
    assert scanner.ready.wait(3), "scanner did not open its port"
    return scanner, collector


def test_codes_arrive_with_prefix_and_suffix_stripped(pty_scanner):
    scanner, collector = start(f"serial://{pty_scanner.path}?baudrate=19200&prefix=\\x02&suffix=\\r\\n")
    try:
        pty_scanner.scan("4006381333931")
        pty_scanner.scan("ABC-123")
        first, second = collector.take(2)
    finally:
        scanner.stop()
    assert (first.data, first.symbology, first.valid) == ("4006381333931", Symbology.EAN13, True)
    assert (second.data, second.symbology, second.valid) == ("ABC-123", Symbology.CODE128, None)
    assert first.source == scanner.identity == f"serial:{pty_scanner.path}"
    assert first.raw == b"4006381333931" and first.timestamp > 0


def test_bad_ean_check_digit_is_flagged_not_dropped(pty_scanner):
    scanner, collector = start(f"serial://{pty_scanner.path}?prefix=\\x02&suffix=\\r\\n")
    try:
        pty_scanner.scan("4006381333932")  # last digit should be 1
        pty_scanner.scan("96385074")  # valid EAN-8
        pty_scanner.scan("96385075")
        bad13, good8, bad8 = collector.take(3)
    finally:
        scanner.stop()
    assert (bad13.symbology, bad13.valid) == (Symbology.EAN13, False)
    assert (good8.symbology, good8.valid) == (Symbology.EAN8, True)
    assert (bad8.symbology, bad8.valid) == (Symbology.EAN8, False)


def test_identical_scans_within_the_window_count_once(pty_scanner):
    scanner, collector = start(f"serial://{pty_scanner.path}?prefix=\\x02&suffix=\\r\\n&dedupe_window=5")
    try:
        for _ in range(3):
            pty_scanner.scan("036000291452")
        pty_scanner.scan("4006381333931")
        pty_scanner.scan("036000291452")  # not a repeat of the previous scan
        events = collector.take(3)
        assert collector.nothing_more()
    finally:
        scanner.stop()
    assert [e.data for e in events] == ["036000291452", "4006381333931", "036000291452"]
    assert events[0].symbology is Symbology.UPCA and events[0].valid is True


def test_dedupe_window_zero_delivers_every_scan(pty_scanner):
    scanner, collector = start(f"serial://{pty_scanner.path}?prefix=\\x02&suffix=\\r\\n&dedupe_window=0")
    try:
        pty_scanner.scan("12345")
        pty_scanner.scan("12345")
        assert [e.data for e in collector.take(2)] == ["12345", "12345"]
    finally:
        scanner.stop()


def test_a_code_split_across_reads_is_reassembled(pty_scanner):
    scanner, collector = start(f"serial://{pty_scanner.path}?prefix=\\x02&suffix=\\r\\n")
    try:
        pty_scanner.send_raw(b"\x0240063")
        pty_scanner.send_raw(b"81333931\r")
        pty_scanner.send_raw(b"\n")
        [event] = collector.take(1)
    finally:
        scanner.stop()
    assert event.data == "4006381333931"


def test_scanner_reports_ready_then_offline_after_stop(pty_scanner):
    scanner, _ = start(f"serial://{pty_scanner.path}")
    assert scanner.status() is DeviceStatus.READY
    scanner.stop()
    assert scanner.status() is DeviceStatus.OFFLINE


def test_missing_port_is_offline_and_retried():
    scanner = open_scanner("serial:///dev/does-not-exist-kassa", reconnect_interval=0.05)
    scanner.start(lambda event: None)
    try:
        assert not scanner.ready.wait(0.3)
        assert scanner.status() is DeviceStatus.OFFLINE
    finally:
        scanner.stop()


def test_callback_exceptions_do_not_kill_the_reader(pty_scanner):
    collector = Collector()

    def flaky(event):
        collector(event)
        if event.data == "111":
            raise RuntimeError("consumer bug")

    scanner = open_scanner(f"serial://{pty_scanner.path}?prefix=\\x02&suffix=\\r\\n")
    scanner.start(flaky)
    assert scanner.ready.wait(3)
    try:
        pty_scanner.scan("111")
        pty_scanner.scan("222")
        assert [e.data for e in collector.take(2)] == ["111", "222"]
    finally:
        scanner.stop()


@pytest.mark.parametrize(
    "suffix, chunks, expected",
    [
        (None, [b"123\r\n456\n789\r"], [b"123", b"456", b"789"]),
        (b"\t", [b"AB\tC", b"D\t"], [b"AB", b"CD"]),
    ],
)
def test_frame_splitter(suffix, chunks, expected):
    splitter = FrameSplitter(suffix=suffix)
    assert [f for chunk in chunks for f in splitter.feed(chunk)] == expected


def test_frame_splitter_uses_silence_when_there_is_no_suffix():
    splitter = FrameSplitter(suffix=b"", frame_gap=0.05)
    assert splitter.feed(b"4006381333931", now=10.0) == []
    assert splitter.feed(b"", now=10.1) == [b"4006381333931"]


@pytest.mark.parametrize(
    "data, expected",
    [
        ("4006381333931", ("4006381333931", Symbology.EAN13, True)),
        ("036000291452", ("036000291452", Symbology.UPCA, True)),
        ("036000291453", ("036000291453", Symbology.UPCA, False)),
        ("12345678901234", ("12345678901234", Symbology.CODE128, None)),
        ("https://kassa.example/config?x=1", ("https://kassa.example/config?x=1", Symbology.QR, None)),
        ('{"lang": "fr", "rooms": [1, 2]}', ('{"lang": "fr", "rooms": [1, 2]}', Symbology.CODE128, None)),
        ("Grüezi", ("Grüezi", Symbology.QR, None)),
    ],
)
def test_symbology_guess_without_aim_ids(data, expected):
    assert classify(data) == expected


@pytest.mark.parametrize(
    "data, expected",
    [
        ("]E04006381333931", ("4006381333931", Symbology.EAN13, True)),
        ("]E496385074", ("96385074", Symbology.EAN8, True)),
        ("]C0ABC", ("ABC", Symbology.CODE128, None)),
        ("]C1010761234567890", ("010761234567890", Symbology.GS1_128, None)),
        ("]Q1hello", ("hello", Symbology.QR, None)),
    ],
)
def test_aim_identifiers_make_the_symbology_certain(data, expected):
    assert classify(data, aim_ids=True) == expected


def test_duplicate_filter_window_slides():
    dedupe = DuplicateFilter(1.0)
    assert dedupe.accept("A", now=0.0)
    assert not dedupe.accept("A", now=0.8)
    assert not dedupe.accept("A", now=1.6)  # still under the scanner: the window moved on
    assert dedupe.accept("A", now=3.0)
    assert dedupe.accept("B", now=3.1)
