"""HID keyboard-wedge decoding for US, German and French layouts, and scanner-vs-keyboard decisions."""

from __future__ import annotations

import os
import queue

import pytest
from evdev import InputEvent
from evdev import ecodes as e

from drivers.scanners.classify import InputDeviceFacts, is_scanner, parse_id_list
from drivers.scanners.events import Symbology
from drivers.scanners.hid import HidScanner, KeyDecoder

SHIFT, ALTGR, ALT = e.KEY_LEFTSHIFT, e.KEY_RIGHTALT, e.KEY_LEFTALT


def key(code: int, value: int) -> InputEvent:
    return InputEvent(0, 0, e.EV_KEY, code, value)


def tap(code: int, *, shift: bool = False, altgr: bool = False) -> list[InputEvent]:
    """The events one key stroke makes, with modifiers held around it, plus the SYN reports."""
    syn = InputEvent(0, 0, e.EV_SYN, e.SYN_REPORT, 0)
    scan = InputEvent(0, 0, e.EV_MSC, e.MSC_SCAN, 0x70004)
    events = []
    if shift:
        events += [key(SHIFT, 1), syn]
    if altgr:
        events += [key(ALTGR, 1), syn]
    events += [scan, key(code, 1), syn, key(code, 0), syn]
    if altgr:
        events += [key(ALTGR, 0), syn]
    if shift:
        events += [key(SHIFT, 0), syn]
    return events


def decode(layout: str, strokes: list[list[InputEvent]], terminator: int = e.KEY_ENTER) -> str:
    decoder = KeyDecoder(layout)
    results = [decoder.feed(event) for stroke in strokes for event in stroke]
    assert all(result is None for result in results), "a code ended before Enter"
    ends = [decoder.feed(event) for event in tap(terminator)]
    return next(r for r in ends if r is not None)


def test_us_layout_with_shifted_characters():
    strokes = [
        tap(e.KEY_A, shift=True),
        tap(e.KEY_B, shift=True),
        tap(e.KEY_MINUS),
        tap(e.KEY_1),
        tap(e.KEY_2),
        tap(e.KEY_MINUS, shift=True),
        tap(e.KEY_X),
        tap(e.KEY_2, shift=True),
        tap(e.KEY_SEMICOLON, shift=True),
        tap(e.KEY_SLASH),
        tap(e.KEY_APOSTROPHE, shift=True),
    ]
    assert decode("us", strokes) == 'AB-12_x@:/"'


def test_german_layout_swaps_y_z_and_shifts_differently():
    strokes = [
        tap(e.KEY_Y, shift=True),
        tap(e.KEY_LEFTBRACE),
        tap(e.KEY_R),
        tap(e.KEY_I),
        tap(e.KEY_C),
        tap(e.KEY_H),
        tap(e.KEY_SLASH),
        tap(e.KEY_4),
        tap(e.KEY_2),
        tap(e.KEY_7, shift=True),
        tap(e.KEY_0, shift=True),
        tap(e.KEY_Z, shift=True),
        tap(e.KEY_MINUS),
        tap(e.KEY_2, shift=True),
    ]
    assert decode("de", strokes) == 'Zürich-42/=Yß"'


def test_german_altgr_characters():
    strokes = [
        tap(e.KEY_Q, altgr=True),
        tap(e.KEY_E, altgr=True),
        tap(e.KEY_8, altgr=True),
        tap(e.KEY_9, altgr=True),
        tap(e.KEY_102ND, altgr=True),
        tap(e.KEY_102ND, shift=True),
    ]
    assert decode("de", strokes) == "@€[]|>"


def test_french_layout_needs_shift_for_digits():
    digits = [
        tap(code, shift=True)
        for code in (e.KEY_1, e.KEY_2, e.KEY_3, e.KEY_4, e.KEY_5, e.KEY_6, e.KEY_7, e.KEY_8, e.KEY_9, e.KEY_0)
    ]
    assert decode("fr", digits) == "1234567890"
    unshifted = [
        tap(e.KEY_1),
        tap(e.KEY_2),
        tap(e.KEY_Q),
        tap(e.KEY_A),
        tap(e.KEY_SEMICOLON),
        tap(e.KEY_W),
        tap(e.KEY_M, shift=True),
        tap(e.KEY_0, altgr=True),
        tap(e.KEY_SLASH, shift=True),
    ]
    assert decode("fr", unshifted) == "&éaqmz?@§"


def test_dead_keys_compose_or_stand_alone():
    assert decode("de", [tap(e.KEY_GRAVE), tap(e.KEY_E)]) == "ê"
    assert decode("de", [tap(e.KEY_GRAVE), tap(e.KEY_SPACE), tap(e.KEY_1)]) == "^1"
    assert decode("fr", [tap(e.KEY_LEFTBRACE), tap(e.KEY_E)]) == "ê"
    assert decode("de", [tap(e.KEY_1), tap(e.KEY_GRAVE)]) == "1^"  # dead key right before Enter


def test_caps_lock_affects_letters_only():
    strokes = [
        tap(e.KEY_CAPSLOCK),
        tap(e.KEY_A),
        tap(e.KEY_1),
        tap(e.KEY_B, shift=True),
        tap(e.KEY_CAPSLOCK),
        tap(e.KEY_C),
    ]
    assert decode("us", strokes) == "A1bc"


def test_keypad_digits_and_keypad_enter():
    strokes = [tap(e.KEY_KP4), tap(e.KEY_KP0), tap(e.KEY_KPDOT), tap(e.KEY_KP7)]
    assert decode("fr", strokes, terminator=e.KEY_KPENTER) == "40.7"


def test_alt_keypad_codes_for_characters_outside_the_layout():
    alt_code = [key(ALT, 1), *tap(e.KEY_KP0), *tap(e.KEY_KP2), *tap(e.KEY_KP2), *tap(e.KEY_KP8), key(ALT, 0)]
    oem_code = [key(ALT, 1), *tap(e.KEY_KP1), *tap(e.KEY_KP3), *tap(e.KEY_KP2), key(ALT, 0)]
    assert decode("us", [tap(e.KEY_X), alt_code, oem_code]) == "xää"


def test_autorepeat_and_releases_type_nothing():
    decoder = KeyDecoder("us")
    for event in (key(e.KEY_A, 1), key(e.KEY_A, 2), key(e.KEY_A, 2), key(e.KEY_A, 0)):
        assert decoder.feed(event) is None
    assert decoder.feed(key(e.KEY_ENTER, 1)) == "a"


def test_unknown_layout_is_rejected():
    with pytest.raises(ValueError):
        KeyDecoder("klingon")


class FakeInputDevice:
    """Enough of evdev.InputDevice for HidScanner: a selectable fd and queued events."""

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        self.fd = self._read_fd
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self.grabbed = self.closed = False
        self.grab_calls = 0

    def push(self, events: list[InputEvent]) -> None:
        for event in events:
            self._events.put(event)
        os.write(self._write_fd, b"x")

    def read(self):
        os.read(self._read_fd, 4096)
        while not self._events.empty():
            yield self._events.get()

    def grab(self) -> None:
        self.grabbed = True
        self.grab_calls += 1

    def ungrab(self) -> None:
        self.grabbed = False

    def close(self) -> None:
        self.closed = True
        os.close(self._read_fd)
        os.close(self._write_fd)


def test_hid_scanner_grabs_the_device_and_delivers_scan_events():
    device = FakeInputDevice()
    scanner = HidScanner(
        "/dev/input/event-fake", layout="de", opener=lambda path: device, identity="usb:0c2e:0b61:sn=1"
    )
    events: queue.Queue = queue.Queue()
    scanner.start(events.put)
    assert scanner.ready.wait(2)
    assert device.grabbed and device.grab_calls == 1
    codes = [
        tap(c)
        for c in (
            e.KEY_4,
            e.KEY_0,
            e.KEY_0,
            e.KEY_6,
            e.KEY_3,
            e.KEY_8,
            e.KEY_1,
            e.KEY_3,
            e.KEY_3,
            e.KEY_3,
            e.KEY_9,
            e.KEY_3,
            e.KEY_1,
        )
    ]
    device.push([event for stroke in codes for event in stroke] + tap(e.KEY_ENTER))
    device.push(tap(e.KEY_Y, shift=True) + tap(e.KEY_1) + tap(e.KEY_ENTER))
    first, second = events.get(timeout=2), events.get(timeout=2)
    scanner.stop()
    assert (first.data, first.symbology, first.valid, first.source) == (
        "4006381333931",
        Symbology.EAN13,
        True,
        "usb:0c2e:0b61:sn=1",
    )
    assert second.data == "Z1"
    assert not device.grabbed and device.closed


FACTS = {"path": "/dev/input/event5", "has_enter": True, "has_digits": True}


@pytest.mark.parametrize(
    "facts, options, expected",
    [
        (InputDeviceFacts("Honeywell Imaging 1900", 0x0C2E, 0x0B61, **FACTS), {}, True),
        (InputDeviceFacts("Logitech USB Keyboard", 0x046D, 0xC31C, has_leds=True, **FACTS), {}, False),
        (InputDeviceFacts("USB Barcode Scanner", 0x1A86, 0xE026, **FACTS), {}, True),
        (InputDeviceFacts("USB Barcode Scanner", 0x1A86, 0xE026, **FACTS), {"name_heuristic": False}, False),
        (InputDeviceFacts("Keyboard with scanner name", 0x1A86, 0xE026, has_leds=True, **FACTS), {}, False),
        (InputDeviceFacts("Generic HID", 0x1234, 0x5678, **FACTS), {"allow": ((0x1234, 0x5678),)}, True),
        (InputDeviceFacts("Generic HID", 0x1234, 0x9999, **FACTS), {"allow": ((0x1234, 0x5678),)}, False),
        (InputDeviceFacts("Zebra DS2208", 0x05E0, 0x1200, **FACTS), {"deny": ((0x05E0, None),)}, False),
        (InputDeviceFacts("Zebra combo", 0x05E0, 0x1300, has_pointer=True, **FACTS), {}, False),
    ],
)
def test_scanner_or_keyboard(facts, options, expected):
    verdict, reason = is_scanner(facts, **options)
    assert verdict is expected, reason
    assert reason


def test_id_lists_parse_from_configuration():
    assert parse_id_list("0c2e, 05e0:1200") == ((0x0C2E, None), (0x05E0, 0x1200))
