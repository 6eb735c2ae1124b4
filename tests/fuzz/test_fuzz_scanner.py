"""Fuzzing scanner input: serial byte streams cut into codes, and HID key events made into text.

- ``FrameSplitter`` (serial framing: prefix, suffix or silence): any byte stream, chopped at
  any points, gives the same codes as when it arrives whole;
- every frame becomes a scan event (``ThreadedScanner._emit``: decode, AIM identifier,
  symbology, check digit), a rejection whose reason holds for it, or is dropped as empty,
  never an exception;
- ``KeyDecoder`` (HID keyboard wedge): any sequence of key events, including long Alt+keypad
  codes, decodes without an exception, and text typed on a layout decodes to the same text;
- real readers (a serial scanner on a pseudo-terminal, a HID scanner on a fake event device)
  keep reading after garbage: the next good code still arrives.
"""

from __future__ import annotations

import queue
import unicodedata
from collections.abc import Iterator

import pytest
from evdev import InputEvent
from evdev import ecodes as e
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers import RejectReason, ScanEvent, ScanRejection, Symbology, open_scanner
from drivers.errors import ConfigError
from drivers.scanners.events import QR_MAX_BYTES
from drivers.scanners.hid import HidScanner, KeyDecoder
from drivers.scanners.keymaps import KEYPAD, LAYOUTS, Keymap
from drivers.scanners.serial_scanner import FrameSplitter, SerialScanner
from drivers.sim.scanner import VirtualSerialScanner
from tests.drivers.test_hid_scanner import FakeInputDevice

pytestmark = pytest.mark.timeout(120)

SUFFIXES = [None, b"\r\n", b"\r", b"\n", b"\x03", b"END", b"\r\n\r\n"]
PREFIXES = [b"", b"\x02", b"]C1"]
pieces = st.sampled_from(
    [
        b"4006381333931",
        b"]E0",
        b"]C1ABC",
        b"\x02",
        b"\r",
        b"\n",
        b"\r\n",
        b"\x03",
        b"END",
        b"E",
        b"\xff\xfe",
        "²٤é☕".encode(),
        "]E0²²".encode(),
        b"\x00",
        b" ",
    ]
) | st.binary(max_size=12)
streams = st.lists(pieces, max_size=12).map(b"".join)
# What a scanner sends with AIM identifiers on: "]E0" + digits, of any script ("²" and "٤" are digits to str.isdigit()).
aim_frames = st.builds(
    lambda aim, digits: (aim + digits).encode(),
    st.sampled_from(["]E0", "]E4", "]C1", "]A0", "]X9", "", "]e0"]),
    st.text("0123456789²³¹٤٠٦", min_size=1, max_size=14),
)


def chopped(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    return [data[start:end] for start, end in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=80, deadline=2000)
@given(
    data=streams,
    cuts=st.lists(st.integers(0, 200), max_size=8),
    suffix=st.sampled_from(SUFFIXES),
    prefix=st.sampled_from(PREFIXES),
    gap=st.sampled_from([0.0, 0.05]),
)
def test_chopped_streams_give_the_same_codes_as_whole_ones(
    data: bytes, cuts: list[int], suffix: bytes | None, prefix: bytes, gap: float
) -> None:
    whole, pieces_ = FrameSplitter(prefix, suffix, gap), FrameSplitter(prefix, suffix, gap)
    expected = whole.feed(data, now=1.0) + whole.feed(b"", now=2.0)  # 2.0: the silence after the last byte
    got = [frame for chunk in chopped(data, cuts) for frame in pieces_.feed(chunk, now=1.0)] + pieces_.feed(
        b"", now=2.0
    )
    assert got == expected
    for frame in got:
        assert (frame or prefix) and (not suffix or suffix not in frame)  # empty: a lone prefix (dropped by _emit)


def test_an_empty_suffix_without_a_gap_is_refused_with_a_reason() -> None:
    with pytest.raises(ConfigError, match="frame_gap"):
        FrameSplitter(b"", b"", 0.0)


@settings(max_examples=80, deadline=2000)
@given(
    frame=streams | aim_frames, encoding=st.sampled_from(["utf-8", "latin-1", "cp437", "ascii"]), aim_ids=st.booleans()
)
def test_every_frame_is_a_scan_event_or_dropped_as_empty(frame: bytes, encoding: str, aim_ids: bool) -> None:
    scanner = SerialScanner("/dev/null", encoding=encoding, aim_ids=aim_ids, dedupe_window=0)
    seen: list[ScanEvent] = []
    rejected: list[ScanRejection] = []
    scanner._on_scan, scanner._on_reject = seen.append, rejected.append  # what start() would set; never opened
    text = frame.decode(encoding, errors="replace")  # U+FFFD where the bytes are not text in the encoding
    result = scanner._emit(text, frame)
    code = text.strip("\r\n")
    if result is None:
        assert not code, text  # only an empty frame is dropped (no dedupe window here)
        return
    if isinstance(result, ScanRejection):
        assert rejected == [result] and not seen and result.message and result.source == scanner.identity
        holds = {
            RejectReason.NOT_TEXT: "\ufffd" in code,
            RejectReason.CONTROL_CHARACTERS: any(unicodedata.category(c) == "Cc" and c != "\x1d" for c in code),
            RejectReason.TOO_LONG: len(code) > scanner.max_length,
            RejectReason.NO_SYMBOLOGY: len(code.encode()) > QR_MAX_BYTES,
        }
        assert holds[result.reason], (result.reason, code)
        return
    assert (
        seen == [result]
        and not rejected
        and isinstance(result.symbology, Symbology)
        and result.valid in (True, False, None)
    )
    assert "\ufffd" not in code and all(unicodedata.category(c) != "Cc" or c == "\x1d" for c in code)
    assert result.data or aim_ids  # only an AIM identifier with nothing behind it is empty
    if result.symbology in (Symbology.EAN13, Symbology.EAN8, Symbology.UPCA) and result.valid is not None:
        assert result.valid is False or (result.data.isascii() and result.data.isdigit())


# ------------------------------------------------------------------------ HID key events
MODIFIERS = [
    e.KEY_LEFTSHIFT,
    e.KEY_RIGHTSHIFT,
    e.KEY_RIGHTALT,
    e.KEY_LEFTALT,
    e.KEY_CAPSLOCK,
    e.KEY_ENTER,
    e.KEY_KPENTER,
]
codes = st.sampled_from(
    sorted({code for layout in LAYOUTS.values() for code in layout.keys} | set(KEYPAD) | set(MODIFIERS))
) | st.integers(0, e.KEY_MAX)
key_events = st.builds(
    lambda kind, code, value: InputEvent(0, 0, kind, code, value),
    st.sampled_from([e.EV_KEY] * 6 + [e.EV_SYN, e.EV_MSC, e.EV_REL]),
    codes,
    st.sampled_from([0, 1, 2, 1]),
)
alt_codes = st.lists(
    st.sampled_from(sorted(code for code, char in KEYPAD.items() if char.isdigit())), min_size=1, max_size=30
).map(
    lambda digits: (
        [InputEvent(0, 0, e.EV_KEY, e.KEY_LEFTALT, 1)]
        + [InputEvent(0, 0, e.EV_KEY, code, value) for code in digits for value in (1, 0)]
        + [InputEvent(0, 0, e.EV_KEY, e.KEY_LEFTALT, 0)]
    )
)
enter = InputEvent(0, 0, e.EV_KEY, e.KEY_ENTER, 1)


@settings(max_examples=70, deadline=2000)
@given(
    layout=st.sampled_from(sorted(LAYOUTS)), runs=st.lists(st.lists(key_events, max_size=20) | alt_codes, max_size=4)
)
def test_any_key_events_decode_without_an_exception(layout: str, runs: list[list[InputEvent]]) -> None:
    decoder = KeyDecoder(layout)
    for event in [event for run in runs for event in run]:
        code = decoder.feed(event)
        assert code is None or isinstance(code, str)  # short of max_length: never TooLong
    assert isinstance(decoder.feed(enter), str)  # Enter always ends a code, whatever came before


def typeable(layout: Keymap) -> dict[str, list[InputEvent]]:
    """Each character the layout types with one key (plus Shift or AltGr), as key events."""

    def down(code: int) -> InputEvent:
        return InputEvent(0, 0, e.EV_KEY, code, 1)

    def up(code: int) -> InputEvent:
        return InputEvent(0, 0, e.EV_KEY, code, 0)

    strokes: dict[str, list[InputEvent]] = {" ": [down(e.KEY_SPACE), up(e.KEY_SPACE)]}
    for code, (plain, shifted, altgr) in sorted(layout.keys.items()):
        for char, modifier in ((altgr, e.KEY_RIGHTALT), (shifted, e.KEY_LEFTSHIFT), (plain, None)):
            if char and char not in layout.dead_keys:
                held = [down(modifier)] if modifier else []
                strokes[char] = held + [down(code), up(code)] + ([up(modifier)] if modifier else [])
    return strokes


TYPEABLE = {name: typeable(layout) for name, layout in LAYOUTS.items()}


@settings(max_examples=60, deadline=2000)
@given(data=st.data(), layout=st.sampled_from(sorted(LAYOUTS)))
def test_text_typed_on_a_layout_decodes_to_the_same_text(data: st.DataObject, layout: str) -> None:
    text = data.draw(st.text(st.sampled_from(sorted(TYPEABLE[layout])), max_size=30), label="text")
    decoder = KeyDecoder(layout)
    for char in text:
        for event in TYPEABLE[layout][char]:
            assert decoder.feed(event) is None
    assert decoder.feed(enter) == text


# ------------------------------------------------------------------------ real readers
@pytest.fixture(scope="module")
def serial_scanner() -> Iterator[tuple[VirtualSerialScanner, queue.Queue[ScanEvent]]]:
    with VirtualSerialScanner(suffix=b"\r\n") as sim:
        scans: queue.Queue[ScanEvent] = queue.Queue()
        scanner = open_scanner(f"serial://{sim.path}?suffix=%0D%0A&aim_ids=true&dedupe_window=0")
        scanner.start(scans.put)
        assert scanner.ready.wait(5), "the scanner did not open its port"
        yield sim, scans
        scanner.stop()


def next_good_code(scans: queue.Queue[ScanEvent], wanted: str) -> ScanEvent:
    while True:
        event = scans.get(timeout=5)  # queue.Empty: the reader died on the garbage before it
        if event.data == wanted:
            return event


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=streams | aim_frames, number=st.integers(0, 10**6))
def test_a_serial_scanner_keeps_reading_after_garbage(
    serial_scanner: tuple[VirtualSerialScanner, queue.Queue[ScanEvent]], garbage: bytes, number: int
) -> None:
    sim, scans = serial_scanner
    sim.send_raw(garbage + b"\r\n")
    sim.scan(f"]C0GOOD-{number}")
    assert next_good_code(scans, f"GOOD-{number}").symbology is Symbology.CODE128


@pytest.fixture(scope="module")
def hid_scanner() -> Iterator[tuple[FakeInputDevice, HidScanner, queue.Queue[ScanEvent]]]:
    device, scans = FakeInputDevice(), queue.Queue()
    scanner = HidScanner("/dev/input/event-fake", layout="de", opener=lambda path: device, dedupe_window=0)
    scanner.start(scans.put)
    assert scanner.ready.wait(5)
    yield device, scanner, scans
    scanner.stop()  # closes the device


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    runs=st.lists(st.lists(key_events, max_size=20) | alt_codes, min_size=1, max_size=3), number=st.integers(0, 10**6)
)
def test_a_hid_scanner_keeps_reading_after_garbage(
    hid_scanner: tuple[FakeInputDevice, HidScanner, queue.Queue[ScanEvent]], runs: list[list[InputEvent]], number: int
) -> None:
    device, scanner, scans = hid_scanner
    for run in runs:
        device.push([*run, enter])
    released = [
        InputEvent(0, 0, e.EV_KEY, code, 0)
        for code in (e.KEY_LEFTSHIFT, e.KEY_RIGHTSHIFT, e.KEY_RIGHTALT, e.KEY_LEFTALT)
    ]
    digits = [
        InputEvent(0, 0, e.EV_KEY, code, value)
        for char in str(number)
        for code in [KEYPAD_CODES[char]]
        for value in (1, 0)
    ]
    device.push([*released, enter, *digits, enter])
    assert next_good_code(scans, str(number)).source == scanner.identity


KEYPAD_CODES = {char: code for code, char in KEYPAD.items() if char.isdigit()}
