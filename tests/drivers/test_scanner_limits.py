"""Scanner input is bounded: over-long lines, binary garbage, control characters and digit runs no
symbology holds are rejected with a reason, and the good code after them arrives exactly once."""

from __future__ import annotations

import queue

import pytest
from evdev import InputEvent
from evdev import ecodes as e

from drivers import RejectReason, ScanEvent, ScanRejection, Symbology, open_scanner
from drivers.errors import ConfigError
from drivers.scanners.events import ScanRejected, TooLong, classify
from drivers.scanners.hid import HidScanner, KeyDecoder
from drivers.scanners.serial_scanner import FrameSplitter
from drivers.sim.scanner import VirtualSerialScanner

from .test_hid_scanner import FakeInputDevice, tap

GOOD = "4006381333931"
SENTINEL = "END-OF-TEST"  # sent last: everything before it has been handled when it arrives


class Recorder:
    """Scans and rejections, in the order the reader thread produced them."""

    def __init__(self) -> None:
        self.items: queue.Queue[ScanEvent | ScanRejection] = queue.Queue()

    def until_sentinel(self, timeout: float = 20.0) -> list[ScanEvent | ScanRejection]:
        seen = []
        while True:
            item = self.items.get(timeout=timeout)
            if isinstance(item, ScanEvent) and item.data == SENTINEL:
                return seen
            seen.append(item)


def start_serial(sim: VirtualSerialScanner, **options):
    recorder = Recorder()
    scanner = open_scanner(f"serial://{sim.path}?suffix=%0D%0A&dedupe_window=0", **options)
    scanner.start(recorder.items.put, recorder.items.put)
    assert scanner.ready.wait(5), "scanner did not open its port"
    return scanner, recorder


@pytest.fixture
def sim():
    with VirtualSerialScanner(suffix=b"\r\n") as virtual:
        yield virtual


@pytest.mark.parametrize(
    "garbage, options, reason",
    [
        (b"7" * (2 * 1024 * 1024), {}, RejectReason.TOO_LONG),  # 2 MiB without a line end
        (bytes(range(0x80, 0x100)) * 4, {}, RejectReason.NOT_TEXT),  # binary, not UTF-8
        (b"ABC\x1b[2J\x07123", {}, RejectReason.CONTROL_CHARACTERS),
        (b"\x00" * 8, {}, RejectReason.CONTROL_CHARACTERS),
        (b"9" * 10_000, {}, RejectReason.TOO_LONG),  # longer than the default max_length (4096)
        (b"9" * 10_000, {"max_length": 16384}, RejectReason.NO_SYMBOLOGY),  # allowed length, but no barcode holds it
    ],
)
def test_bad_input_is_rejected_with_a_reason_and_the_next_code_arrives_once(sim, garbage, options, reason):
    scanner, recorder = start_serial(sim, **options)
    try:
        sim.send_raw(garbage + b"\r\n")
        sim.scan(GOOD)
        sim.scan(SENTINEL)
        items = recorder.until_sentinel()
    finally:
        scanner.stop()
    rejections = [item for item in items if isinstance(item, ScanRejection)]
    scans = [item for item in items if isinstance(item, ScanEvent)]
    assert [r.reason for r in rejections] == [reason]
    [rejection] = rejections
    assert rejection.length == len(garbage) and rejection.source == scanner.identity
    assert "check" in rejection.message  # says what to look at
    assert [(s.data, s.symbology, s.valid) for s in scans] == [(GOOD, Symbology.EAN13, True)]
    assert scanner.rejections == 1


def test_an_over_long_line_is_not_buffered():
    splitter = FrameSplitter(suffix=b"\r\n", max_length=4096)
    chunk = b"5" * 4000
    for _ in range(512):  # 2 MB in the pieces a serial read returns
        assert splitter.feed(chunk, now=1.0) == []
        assert len(splitter._buffer) <= 4096
    assert splitter.feed(b"\r\n" + GOOD.encode() + b"\r\n", now=1.0) == [TooLong(512 * 4000), GOOD.encode()]


def test_an_over_long_line_ended_by_silence_is_rejected_too():
    splitter = FrameSplitter(suffix=b"", frame_gap=0.05, max_length=16)
    assert splitter.feed(b"x" * 40, now=1.0) == []
    assert splitter.feed(b"", now=2.0) == [TooLong(40)]
    assert splitter.feed(b"OK", now=3.0) == [] and splitter.feed(b"", now=4.0) == [b"OK"]


def test_a_suffix_cut_by_the_drop_is_still_found():
    splitter = FrameSplitter(suffix=b"END", max_length=8)
    assert splitter.feed(b"a" * 20 + b"EN", now=1.0) == []
    assert splitter.feed(b"Dshort", now=1.0) == [TooLong(20)]
    assert splitter.feed(b"END", now=1.0) == [b"short"]


def test_max_length_must_be_sensible():
    with pytest.raises(ConfigError, match="max_length"):
        open_scanner("serial:///dev/ttyS0?max_length=0")


@pytest.mark.parametrize(
    "data, expected",
    [
        ("96385074", Symbology.EAN8),
        ("036000291452", Symbology.UPCA),
        ("4006381333931", Symbology.EAN13),
        ("1" * 14, Symbology.CODE128),  # Code 128 set C carries digit runs...
        ("1" * 48, Symbology.CODE128),
        ("1" * 49, Symbology.QR),  # ...of a length that fits a receipt; longer is a 2D code
        ("1" * 7089, Symbology.QR),
        ("A" * 48, Symbology.CODE128),
        ("A" * 49, Symbology.QR),
        ("0104607028393878215'Wx>y\x1d93dGVz", Symbology.CODE128),  # GS1 data: GS separates fields
        ("01046070283938782154LPgJ2J8n2b\x1d91EE06\x1d92" + "x" * 44, Symbology.QR),
        ("Grüezi", Symbology.QR),
    ],
)
def test_symbology_is_guessed_where_length_and_alphabet_fit(data, expected):
    assert classify(data)[1] is expected


@pytest.mark.parametrize("data", ["1" * 7090, "é" * 1477])
def test_data_no_symbology_holds_is_rejected(data):
    with pytest.raises(ScanRejected) as raised:
        classify(data)
    assert raised.value.reason is RejectReason.NO_SYMBOLOGY


def test_a_hid_scanner_rejects_an_endless_line_and_control_characters():
    device = FakeInputDevice()
    recorder = Recorder()
    scanner = HidScanner("/dev/input/event-fake", opener=lambda path: device, max_length=32, dedupe_window=0)
    scanner.start(recorder.items.put, recorder.items.put)
    assert scanner.ready.wait(5)
    alt = e.KEY_LEFTALT
    escape = [InputEvent(0, 0, e.EV_KEY, alt, 1), *tap(e.KEY_KP2), *tap(e.KEY_KP7), InputEvent(0, 0, e.EV_KEY, alt, 0)]
    try:
        device.push([event for _ in range(100) for event in tap(e.KEY_7)] + tap(e.KEY_ENTER))  # 100 keys, limit 32
        device.push(tap(e.KEY_A) + escape + tap(e.KEY_B) + tap(e.KEY_ENTER))  # Alt+27 types ESC
        device.push([event for char in GOOD for event in tap(getattr(e, f"KEY_{char}"))] + tap(e.KEY_ENTER))
        device.push([event for char in SENTINEL for event in tap(KEYS[char], shift=char.isalpha())] + tap(e.KEY_ENTER))
        items = recorder.until_sentinel()
    finally:
        scanner.stop()
    assert [(type(i).__name__, getattr(i, "reason", None)) for i in items] == [
        ("ScanRejection", RejectReason.TOO_LONG),
        ("ScanRejection", RejectReason.CONTROL_CHARACTERS),
        ("ScanEvent", None),
    ]
    assert items[0].length == 100 and "characters" in items[0].message
    assert items[2].data == GOOD


def test_the_key_decoder_keeps_at_most_max_length_characters():
    decoder = KeyDecoder("us", max_length=4)
    for _ in range(1000):
        for event in tap(e.KEY_1):
            decoder.feed(event)
    assert len(decoder._chars) == 4
    assert [decoder.feed(event) for event in tap(e.KEY_ENTER)][1] == TooLong(1000)


KEYS = {"-": e.KEY_MINUS, **{char: getattr(e, f"KEY_{char}") for char in "ENDOFTS"}}
