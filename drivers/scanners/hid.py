"""USB HID keyboard-wedge scanners through evdev.

The device is grabbed (``EVIOCGRAB``) so its keystrokes reach only kassa,
key codes are turned into text with the scanner's configured layout, and
Enter ends a code.
"""

from __future__ import annotations

import contextlib
import logging
import select
import unicodedata
from collections.abc import Callable, Iterable
from typing import Any

from evdev import InputDevice, InputEvent, ecodes, list_devices

from drivers.errors import ScannerError
from drivers.identity import DeviceDescriptor, DeviceKind, Transport
from drivers.registry import Supports, UsbId, register_driver
from drivers.scanners.base import ThreadedScanner
from drivers.scanners.events import DEFAULT_MAX_LENGTH, PREVIEW_LENGTH, TooLong
from drivers.scanners.keymaps import COMBINING, KEYPAD_DIGITS, Keymap, get_layout
from drivers.vendors import SCANNER_VENDORS, USB_CLASS_HID

logger = logging.getLogger(__name__)

KEY_UP, KEY_DOWN = 0, 1
SHIFTS = {ecodes.KEY_LEFTSHIFT, ecodes.KEY_RIGHTSHIFT}
TERMINATORS = (ecodes.KEY_ENTER, ecodes.KEY_KPENTER)


class KeyDecoder:
    """Turns key events into codes. Feed it every event; it returns a code when Enter is pressed.

    Handles Shift, AltGr, Caps Lock (letters only), dead keys, the keypad and
    Alt+keypad character codes (some scanners send non-ASCII that way:
    Alt+0228 is "ä" from Windows-1252, Alt+132 is "ä" from code page 437).
    A code longer than ``max_length`` characters is not kept: Enter then returns
    a :class:`TooLong` instead of the text.
    """

    def __init__(
        self,
        layout: Keymap | str = "us",
        terminators: Iterable[int] = TERMINATORS,
        max_length: int = DEFAULT_MAX_LENGTH,
    ) -> None:
        self.layout = get_layout(layout) if isinstance(layout, str) else layout
        self.terminators = frozenset(terminators)
        self.max_length = max_length
        self.reset()

    def reset(self) -> None:
        self._chars: list[str] = []
        self._dropped = 0
        self._pressed_shifts: set[int] = set()
        self._altgr = False
        self._alt = False
        self._caps = False
        self._alt_digits = ""
        self._dead: str | None = None

    def feed(self, event: InputEvent) -> str | TooLong | None:
        if event.type != ecodes.EV_KEY:
            return None
        code, value = event.code, event.value
        if code in SHIFTS:
            (self._pressed_shifts.add if value else self._pressed_shifts.discard)(code)
            return None
        if code == ecodes.KEY_RIGHTALT:
            self._altgr = value != KEY_UP
            return None
        if code == ecodes.KEY_LEFTALT:
            self._alt = value != KEY_UP
            if value == KEY_UP and self._alt_digits:
                self._type(_alt_code_char(self._alt_digits))
                self._alt_digits = ""
            return None
        if value != KEY_DOWN:
            return None  # key release or autorepeat
        if code == ecodes.KEY_CAPSLOCK:
            self._caps = not self._caps
            return None
        if code in self.terminators:
            return self._finish()
        if self._alt and code in KEYPAD_DIGITS:
            self._alt_digits += KEYPAD_DIGITS[code]
            return None
        char = self.layout.char(code, bool(self._pressed_shifts), self._altgr)
        if not char:
            logger.debug("key code %d has no character in layout %s", code, self.layout.name)
            return None
        if self._caps and char.isalpha() and len(char) == 1:
            char = char.lower() if self._pressed_shifts else char.upper()
        self._type(char)
        return None

    def _type(self, char: str) -> None:
        if self._dead is not None:
            dead, self._dead = self._dead, None
            if char == " ":
                self._keep(dead)
                return
            composed = unicodedata.normalize("NFC", char + COMBINING[dead])
            if len(composed) == 1:
                self._keep(composed)
                return
            self._keep(dead)
        if char in self.layout.dead_keys and char in COMBINING:
            self._dead = char
            return
        self._keep(char)

    def _keep(self, char: str) -> None:
        if len(self._chars) < self.max_length:
            self._chars.append(char)
        else:  # a wedge that never sends Enter must not fill memory
            self._dropped += 1

    def _finish(self) -> str | TooLong:
        if self._dead is not None:
            self._keep(self._dead)
            self._dead = None
        code, self._chars = "".join(self._chars), []
        if self._dropped:
            length, self._dropped = len(code) + self._dropped, 0
            return TooLong(length, code[:PREVIEW_LENGTH])
        return code


def _alt_code_char(digits: str) -> str:
    if len(digits) > 7:  # no character has a longer code; int() and chr() would raise on some
        return "\ufffd"
    number = int(digits)
    try:
        if digits.startswith("0") and number < 256:
            return bytes([number]).decode("cp1252")
        if number < 256:
            return bytes([number]).decode("cp437")
        return chr(number)
    except (UnicodeDecodeError, ValueError):
        return "\ufffd"


def find_input_device(
    vendor_id: int,
    product_id: int,
    *,
    serial_number: str | None = None,
    port_path: str | None = None,
    paths: list[str] | None = None,
) -> str | None:
    """The /dev/input/event* node of a USB HID device, matched by ids and serial or port."""
    for path in paths if paths is not None else list_devices():
        try:
            device = InputDevice(path)
        except OSError:
            continue
        try:
            if device.info.vendor != vendor_id or device.info.product != product_id:
                continue
            if ecodes.EV_KEY not in device.capabilities():
                continue
            if serial_number and device.uniq and device.uniq != serial_number:
                continue
            # phys looks like "usb-0000:00:14.0-1.4/input0"; the port chain follows the bus prefix
            if port_path and device.phys and f"-{port_path.split('-', 1)[-1]}/" not in device.phys:
                continue
            return path
        finally:
            device.close()
    return None


@register_driver
class HidScanner(ThreadedScanner):
    supports = Supports(
        kind=DeviceKind.SCANNER,
        transports=frozenset({Transport.USB, Transport.HID}),
        usb_ids=tuple(UsbId(vendor) for vendor in SCANNER_VENDORS),
        require_usb_classes=(USB_CLASS_HID,),
        notes="USB HID keyboard-wedge scanners (evdev, grabbed)",
    )
    length_unit = "characters"

    def __init__(
        self,
        path: str | None = None,
        *,
        vendor_id: int | None = None,
        product_id: int | None = None,
        serial_number: str | None = None,
        port_path: str | None = None,
        layout: str = "us",
        grab: bool = True,
        identity: str | None = None,
        opener: Callable[[str], InputDevice[str]] = InputDevice,
        **options: Any,
    ) -> None:
        if path is None and (vendor_id is None or product_id is None):
            raise ScannerError("a HID scanner needs an event device path or USB vendor/product ids")
        super().__init__(identity or f"hid:{path or f'{vendor_id:04x}:{product_id:04x}'}", **options)
        self.path, self.vendor_id, self.product_id = path, vendor_id, product_id
        self.serial_number, self.port_path = serial_number, port_path
        self.decoder = KeyDecoder(layout, max_length=self.max_length)
        self.grab = grab
        self._opener = opener
        self._device: InputDevice[str] | None = None

    @classmethod
    def from_descriptor(cls, descriptor: DeviceDescriptor, **options: Any) -> HidScanner:
        path = descriptor.device_path if descriptor.transport is Transport.HID else None
        return cls(
            path,
            vendor_id=descriptor.vendor_id,
            product_id=descriptor.product_id,
            serial_number=descriptor.serial_number,
            port_path=descriptor.port_path,
            identity=descriptor.identity,
            **options,
        )

    def _open(self) -> None:
        path = self.path
        if not path and self.vendor_id is not None and self.product_id is not None:
            path = find_input_device(
                self.vendor_id, self.product_id, serial_number=self.serial_number, port_path=self.port_path
            )
        if not path:
            raise ScannerError(f"no input device for {self.identity}")
        self._device = self._opener(path)
        if self.grab:
            self._device.grab()  # keystrokes now reach kassa only, not the console or a focused window
        self.decoder.reset()

    def _read_loop(self) -> None:
        device = self._device
        if device is None:
            raise ScannerError(f"input device of {self.identity} is not open")
        while not self._stop.is_set():
            ready, _, _ = select.select([device.fd], [], [], 0.2)
            if not ready:
                continue
            try:
                events = list(device.read())
            except BlockingIOError:
                continue  # woken up without a complete event
            for event in events:
                code = self.decoder.feed(event)
                if isinstance(code, TooLong):
                    self._emit_too_long(code)
                elif code is not None:
                    self._emit(code, code.encode("utf-8"))

    def _close(self) -> None:
        device, self._device = self._device, None
        if device is None:
            return
        if self.grab:
            with contextlib.suppress(OSError):  # the device is gone; the grab went with it
                device.ungrab()
        device.close()
