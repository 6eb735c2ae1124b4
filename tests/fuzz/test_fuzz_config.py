"""Fuzzing the agent's configuration: agent.toml, the values `kassactl config set` takes, and
the device specs of [[printers]], [[scanners]] and [[drawers]].

- any text as agent.toml: ``load_config`` gives a config or a ``ConfigError`` that names the
  file (and the line, for a TOML syntax error); never another exception;
- valid TOML with wrong types, unknown keys, out-of-range values (mutations of a full, valid
  file, written with tomlkit): a config, or a ``ConfigError`` naming a key that was changed;
- any typed value for ``config set`` is read (``parse_value``) and written (``set_values``)
  or refused naming the key, and the file stays loadable;
- any device URL and options: the drivers' factories give a device or a ``drivers.ConfigError``
  (what the hardware component turns into a clean "config error" exit), and what they give
  can decode and time what it reads.

The cloud service reads no file (``KASSA_CLOUD_*`` variables or flags), so it is not here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agent.config import AgentConfig, ConfigError, load_config
from agent.config_edit import parse_value, set_values
from broker.contract.signing import public_key_text
from drivers import open_drawer, open_printer, open_scanner
from drivers.errors import ConfigError as DriverConfigError
from drivers.scanners.serial_scanner import SerialScanner
from tests.fuzz.strategies import NASTY_TEXT, mutated
from tests.support.licence import CLOUD_KEY

pytestmark = pytest.mark.timeout(120)

BASE: dict[str, Any] = {
    "device_id": "pos-7",
    "paths": {"state_dir": "/tmp/kassa-fuzz/state", "run_dir": "/tmp/kassa-fuzz/run"},
    "log": {"level": "info", "format": "text"},
    "mqtt": {
        "host": "127.0.0.1",
        "port": 1883,
        "password": "secret",
        "keepalive_s": 30,
        "ack_window": 1000,
        "reconnect_min_s": 0.5,
        "batch_max_bytes": 65536,
        "tls": False,
    },
    "cloud": {"api_url": "https://cloud.example.com", "timeout_s": 10.0},
    "hardware": {"receipt_printer": "front", "cash_drawer": "cash", "status_poll_s": 5.0},
    "site": {"point_of_sale": "STORE-1", "language": "de-DE", "rooms": ["Bar", "Terrasse"]},
    "cashiers": {"lockout_attempts": 5, "session_timeout_s": 28800.0},
    "pos_api": {"bind": "127.0.0.1", "port": 8765, "cors_origins": ["http://127.0.0.1:8080"]},
    "trust": {"cloud_keys": {"cloud-1": public_key_text(CLOUD_KEY.public_key())}},
    "printers": [{"name": "front", "url": "tcp://10.0.0.5:9100", "options": {"profile": "TM-T88V"}}],
    "scanners": [{"name": "hand", "url": "serial:///dev/ttyACM0?suffix=%0D"}],
    "drawers": [{"name": "cash", "url": "printer:?pin=2", "printer": "front"}],
}


def write(path: Path, document: Any) -> bool:
    """agent.toml from a document (None values left out: TOML has no null). False when tomlkit
    cannot write it (a top-level array, say): then there is no such file to read."""

    def without_none(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): without_none(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [without_none(v) for v in value if v is not None]
        return value

    try:
        text = tomlkit.dumps(without_none(document))
    except Exception:
        return False
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    return True


def load(path: Path) -> AgentConfig | ConfigError:
    try:
        return load_config(path, environ={})
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith(f"{path}: "), message
        return exc


def changed(base: Any, other: Any, prefix: tuple = ()) -> list[tuple]:
    """Paths where ``other`` differs from ``base`` (added, removed or replaced)."""
    if isinstance(base, dict) and isinstance(other, dict):
        found = []
        for key in {*base, *other}:
            found += (
                changed(base[key], other[key], (*prefix, key)) if key in base and key in other else [(*prefix, key)]
            )
        return found
    if isinstance(base, list) and isinstance(other, list) and len(base) == len(other):
        return [
            p for index, (a, b) in enumerate(zip(base, other, strict=True)) for p in changed(a, b, (*prefix, index))
        ]
    return [] if base == other and type(base) is type(other) else [prefix]


toml_texts = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=100).map(lambda raw: raw.decode("latin-1")),
    st.sampled_from(
        [
            "",
            "device_id = ",
            "a = " + "1" * 5000,
            "a = " + "[" * 3000,
            "a = " + "{b=" * 2000,
            "[mqtt",
            "[[printers]]\n",
            'device_id = "pos-7"\n[mqtt]\nport = 99999999999999999999999',
            'device_id = "pos-7"\n[site]\nrooms = [1, "a"]',
            'device_id = "pos-7"\n\x00',
            'device_id = "pos-7"\n[mqtt]\nport = nan',
            'device_id = """\n"""',
        ]
    ),
)


@settings(max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=toml_texts)
def test_any_text_loads_or_is_refused_naming_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    result = load(path)
    event(type(result).__name__)
    if isinstance(result, ConfigError) and "TOML syntax error" in str(result):
        assert "line" in str(result) or "end of document" in str(result)  # where the syntax breaks


@settings(
    max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(document=mutated(BASE))
def test_wrong_values_are_refused_naming_a_changed_key(tmp_path: Path, document: Any) -> None:
    path = tmp_path / "agent.toml"
    if not write(path, document):
        return
    result = load(path)
    event(type(result).__name__)
    if isinstance(result, AgentConfig):
        return
    message = str(result)
    if "TOML syntax error" in message or "not UTF-8" in message:  # a key or text tomlkit wrote that TOML cannot read
        return
    keys = [
        ".".join(map(str, path_[:length])) for path_ in changed(BASE, document) for length in range(1, len(path_) + 1)
    ]
    values = [
        str(value)[:20] for path_ in changed(BASE, document) if path_ and (value := _at(document, path_)) is not None
    ]
    named = any(re.search(rf"'{re.escape(key)}['.]|{re.escape(key)}:", message) for key in keys)
    across = "key '" not in message and re.search(r"'[^']+'", message)  # a rule across keys names the devices involved
    assert named or across or any(value in message for value in values), (keys, message)


def _at(document: Any, path: tuple) -> Any:
    try:
        for step in path:
            document = document[step]
    except (KeyError, IndexError, TypeError):
        return None
    return document


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    assert write(path, BASE)
    return path


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key=st.sampled_from(
        [
            "site.language",
            "site.rooms",
            "mqtt.port",
            "cashiers.lockout_s",
            "hardware.receipt_printer",
            "log",
            "printers",
            "nope",
            "mqtt.nope.deeper",
            "",
        ]
    ),
    typed=st.text(max_size=30)
    | st.sampled_from([*NASTY_TEXT, "1" * 5000, "[" * 3000, "[1, 2]", "true", "'x'", "{a = 1}"]),
)
def test_config_set_values_are_written_or_refused_naming_the_key(config_file: Path, key: str, typed: str) -> None:
    before = config_file.read_bytes()
    try:
        set_values(config_file, {key: parse_value(typed)})
    except ConfigError as exc:
        assert key in str(exc) or "device tables" in str(exc), str(exc)
        assert config_file.read_bytes() == before  # refused: the file was not touched
        return
    finally:
        assert isinstance(load(config_file), AgentConfig)  # whatever happened, the file still loads
    config_file.write_bytes(before)


# ------------------------------------------------------------------------ device specs
schemes = st.sampled_from(["tcp", "usb", "serial", "file", "hid", "printer", "socket", "lp", "ftp", "", "TCP"])
netlocs = st.sampled_from(
    ["", "10.0.0.5:9100", "[::1", "[::1]:9100", "host:x", "04b8:0202", "04b8", "zz:yy", "a:b:c", "h:99999"]
)
url_paths = st.sampled_from(["", "/dev/ttyS0", "/dev/null", "/%00", "/dev/input/event3"])
queries = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "suffix",
                "prefix",
                "baudrate",
                "bytesize",
                "parity",
                "stopbits",
                "frame_gap",
                "encoding",
                "dedupe_window",
                "aim_ids",
                "reconnect_interval",
                "layout",
                "grab",
                "profile",
                "paper_mm",
                "columns",
                "status_check",
                "status_timeout",
                "code_pages",
                "pin",
                "on_ms",
                "settle_time",
                "kick",
                "open_mask",
                "port",
                "x",
            ]
        ),
        st.sampled_from(
            [
                "",
                "1",
                "-1",
                "0",
                "0x10",
                "nan",
                "inf",
                "1e999",
                "abc",
                "%0D%0A",
                "\\x",
                "\\x0",
                "\\r\\n",
                "bogus",
                "de",
                "klingon",
                "never",
                "always",
                "utf-8",
                "9" * 5000,
                "é",
            ]
        ),
    ),
    max_size=3,
)
BASE_URLS = {
    "printer": ["tcp://10.0.0.5:9100", "usb://04b8:0202", "serial:///dev/ttyS0", "file:///dev/usb/lp0", "socket://h"],
    "scanner": ["serial:///dev/ttyACM0", "hid:///dev/input/event3", "hid://0c2e:0b61"],
    "drawer": ["printer:", "serial:///dev/ttyS1"],
}
query_strings = queries.map(lambda query: "?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
random_urls = st.builds(
    lambda scheme, netloc, path, query: f"{scheme}://{netloc}{path}{query}", schemes, netlocs, url_paths, query_strings
)


def device_urls(kind: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(str.__add__, st.sampled_from(BASE_URLS[kind]), query_strings), random_urls, st.text(max_size=40)
    )


device_options = st.dictionaries(
    st.sampled_from(
        ["dedupe_window", "encoding", "suffix", "baudrate", "columns", "pin", "layout", "status_timeout", "bogus"]
    ),
    st.one_of(st.integers(), st.floats(), st.booleans(), st.text(max_size=10)),
    max_size=1,
)


@settings(max_examples=70, deadline=2000)
@given(data=st.data(), options=device_options, kind=st.sampled_from(["printer", "scanner", "drawer"]))
def test_device_specs_give_a_device_or_a_config_error(data: st.DataObject, options: dict[str, Any], kind: str) -> None:
    url = data.draw(device_urls(kind), label="url")
    printer = open_printer("file:///dev/null")
    try:
        device = {
            "printer": lambda: open_printer(url, **options),
            "scanner": lambda: open_scanner(url, **options),
            "drawer": lambda: open_drawer(url, printer=printer, **options),
        }[kind]()
    except DriverConfigError as exc:
        assert str(exc).strip()
        event(f"{kind}: refused")
        return
    event(f"{kind}: built")
    if isinstance(device, SerialScanner):  # what it would do with the first bytes it reads
        assert isinstance(b"\xff4006381333931".decode(device.encoding, errors="replace"), str)
        device.splitter.feed(b"4006381333931\r\n", now=1.0)
    if hasattr(device, "duplicates"):
        assert device.duplicates.accept("x", 1.0) is True


def test_the_base_file_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    assert write(path, BASE) and isinstance(load(path), AgentConfig)


NASTY_SPECS = [
    ("scanner", "hid:///dev/input/event3?layout=klingon"),
    ("scanner", "serial:///dev/ttyACM0?encoding=bogus"),
    ("scanner", "serial:///dev/ttyACM0?encoding=rot13"),
    ("scanner", "serial:///dev/ttyACM0?dedupe_window=-1"),
    ("scanner", "serial:///dev/ttyACM0?dedupe_window=nan"),
    ("scanner", "serial:///dev/ttyACM0?suffix=\\x"),
    ("scanner", "serial:///dev/ttyACM0?suffix=&frame_gap=0"),
    ("scanner", "hid://0c2e"),
    ("scanner", "hid://zz:yy"),
    ("printer", "tcp://[::1"),
    ("printer", "tcp://10.0.0.5:9100?profile=nope"),
    ("printer", "serial:///dev/ttyS0?baudrate=abc"),
    ("printer", "usb://04b8"),
    ("drawer", "printer:?pin=7"),
    ("drawer", "serial:///dev/ttyS1?kick=\\x0"),
    ("drawer", "ftp://x"),
]


@pytest.mark.parametrize(("kind", "url"), NASTY_SPECS, ids=[url for _, url in NASTY_SPECS])
def test_known_bad_device_specs_are_config_errors(kind: str, url: str) -> None:
    factory = {
        "printer": open_printer,
        "scanner": open_scanner,
        "drawer": lambda spec: open_drawer(spec, printer=open_printer("file:///dev/null")),
    }
    with pytest.raises(DriverConfigError) as refused:
        factory[kind](url)
    assert str(refused.value).strip()
