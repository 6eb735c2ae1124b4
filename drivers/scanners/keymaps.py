"""Keyboard layouts for HID keyboard-wedge scanners.

A wedge scanner "types" the code as key presses for the keyboard layout it
was configured with. Linux key codes name physical key positions (US
names), so the same code means "y" on a US scanner and "z" on a German one.
Each layout maps a key code to (plain, shifted, AltGr) characters.
"""

from __future__ import annotations

from dataclasses import dataclass

from evdev import ecodes as e

from drivers.errors import ConfigError

ROW_NUMBERS = (
    e.KEY_GRAVE,
    e.KEY_1,
    e.KEY_2,
    e.KEY_3,
    e.KEY_4,
    e.KEY_5,
    e.KEY_6,
    e.KEY_7,
    e.KEY_8,
    e.KEY_9,
    e.KEY_0,
    e.KEY_MINUS,
    e.KEY_EQUAL,
)
ROW_TOP = (
    e.KEY_Q,
    e.KEY_W,
    e.KEY_E,
    e.KEY_R,
    e.KEY_T,
    e.KEY_Y,
    e.KEY_U,
    e.KEY_I,
    e.KEY_O,
    e.KEY_P,
    e.KEY_LEFTBRACE,
    e.KEY_RIGHTBRACE,
    e.KEY_BACKSLASH,
)
ROW_HOME = (
    e.KEY_A,
    e.KEY_S,
    e.KEY_D,
    e.KEY_F,
    e.KEY_G,
    e.KEY_H,
    e.KEY_J,
    e.KEY_K,
    e.KEY_L,
    e.KEY_SEMICOLON,
    e.KEY_APOSTROPHE,
)
ROW_BOTTOM = (
    e.KEY_102ND,
    e.KEY_Z,
    e.KEY_X,
    e.KEY_C,
    e.KEY_V,
    e.KEY_B,
    e.KEY_N,
    e.KEY_M,
    e.KEY_COMMA,
    e.KEY_DOT,
    e.KEY_SLASH,
)
ROWS = (ROW_NUMBERS, ROW_TOP, ROW_HOME, ROW_BOTTOM)

# the same on every layout (NumLock on)
KEYPAD = {
    e.KEY_KP0: "0",
    e.KEY_KP1: "1",
    e.KEY_KP2: "2",
    e.KEY_KP3: "3",
    e.KEY_KP4: "4",
    e.KEY_KP5: "5",
    e.KEY_KP6: "6",
    e.KEY_KP7: "7",
    e.KEY_KP8: "8",
    e.KEY_KP9: "9",
    e.KEY_KPDOT: ".",
    e.KEY_KPMINUS: "-",
    e.KEY_KPPLUS: "+",
    e.KEY_KPASTERISK: "*",
    e.KEY_KPSLASH: "/",
}
KEYPAD_DIGITS = {code: char for code, char in KEYPAD.items() if char.isdigit()}

# dead keys compose with the next letter (^ + e = ê); followed by space they give themselves
COMBINING = {"^": "\u0302", "´": "\u0301", "`": "\u0300", "¨": "\u0308", "~": "\u0303"}


@dataclass(frozen=True)
class Keymap:
    name: str
    keys: dict[int, tuple[str, str, str]]  # code -> (plain, shifted, altgr); "" = nothing
    dead_keys: frozenset[str] = frozenset()

    def char(self, code: int, shift: bool, altgr: bool) -> str:
        if code == e.KEY_SPACE:
            return " "
        if code in KEYPAD:
            return KEYPAD[code]
        plain, shifted, alt = self.keys.get(code, ("", "", ""))
        if altgr:
            return alt
        return shifted if shift else plain


def _build(name: str, rows: tuple[tuple[str, str], ...], altgr: dict[str, str], dead: str = "") -> Keymap:
    keys: dict[int, tuple[str, str, str]] = {}
    for codes, (plain, shifted) in zip(ROWS, rows, strict=True):
        if len(plain) != len(codes) or len(shifted) != len(codes):
            raise ValueError(f"layout {name}: row of {len(codes)} keys has {len(plain)}/{len(shifted)} characters")
        for code, p, s in zip(codes, plain, shifted, strict=True):
            keys[code] = (p.strip(), s.strip(), altgr.get(p, ""))
    return Keymap(name, keys, frozenset(dead))


US = _build(
    "us",
    (
        ("`1234567890-=", "~!@#$%^&*()_+"),
        ("qwertyuiop[]\\", "QWERTYUIOP{}|"),
        ("asdfghjkl;'", 'ASDFGHJKL:"'),
        ("\\zxcvbnm,./", "|ZXCVBNM<>?"),
    ),
    {},
)

# German QWERTZ; AltGr characters keyed by the plain character of the same key
DE = _build(
    "de",
    (
        ("^1234567890ß´", '°!"§$%&/()=?`'),
        ("qwertzuiopü+#", "QWERTZUIOPÜ*'"),
        ("asdfghjklöä", "ASDFGHJKLÖÄ"),
        ("<yxcvbnm,.-", ">YXCVBNM;:_"),
    ),
    {
        "2": "²",
        "3": "³",
        "7": "{",
        "8": "[",
        "9": "]",
        "0": "}",
        "ß": "\\",
        "q": "@",
        "e": "€",
        "+": "~",
        "<": "|",
        "m": "µ",
    },
    dead="^´`",
)

# French AZERTY: digits need Shift
FR = _build(
    "fr",
    (
        ("²&é\"'(-è_çà)=", "³1234567890°+"),
        ("azertyuiop^$*", "AZERTYUIOP¨£µ"),
        ("qsdfghjklmù", "QSDFGHJKLM%"),
        ("<wxcvbn,;:!", ">WXCVBN?./§"),
    ),
    {
        "é": "~",
        '"': "#",
        "'": "{",
        "(": "[",
        "-": "|",
        "è": "`",
        "_": "\\",
        "ç": "^",
        "à": "@",
        ")": "]",
        "=": "}",
        "e": "€",
        "$": "¤",
    },
    dead="^¨",
)

LAYOUTS: dict[str, Keymap] = {m.name: m for m in (US, DE, FR)}


def get_layout(name: str) -> Keymap:
    try:
        return LAYOUTS[name.lower()]
    except (KeyError, AttributeError):  # ConfigError (a ValueError): the agent reports it as a config error
        raise ConfigError(f"unknown keyboard layout {name!r}; known: {', '.join(sorted(LAYOUTS))}") from None
