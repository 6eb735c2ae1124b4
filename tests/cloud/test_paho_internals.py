"""The private parts of paho that cloud_api/ingest/client.py (IngestClient) and
cloud_api/ingest/connection.py rely on are still there, of the same kind and signature.

IngestClient replaces paho's packet reader and queues PUBACKs itself, so it reads and writes
paho's private state. A paho release may rename or reshape any of it without notice; this test
names each member, so an upgrade fails here, saying what to re-check, instead of in the field.
pyproject.toml pins paho to the minor version this passes on.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.exception import MalformedPacket

RECHECK = (
    "paho's internals changed: re-read IngestClient (cloud_api/ingest/client.py: loop_read, "
    "_publish_received, _handle_framed, ack_many) against the new paho source before raising the pin "
    "in pyproject.toml"
)

# Methods IngestClient calls or overrides, with the parameters (after self) it relies on.
METHODS: dict[str, list[str]] = {
    "_create_socket": [],  # overridden: called on every (re)connect, returns the new socket
    "_sock_recv": ["bufsize"],
    "_easy_log": ["level", "fmt", "args"],
    "_loop_rc_handle": ["rc"],
    "_packet_handle": [],  # dispatches on self._in_packet
    "_packet_queue": ["command", "packet", "mid", "qos", "info"],  # called with the first four
    "loop_read": ["max_packets"],  # overridden
    "ack": ["mid", "qos"],
}

# paho's read state, which _handle_framed fills in exactly as paho's own reader leaves it.
IN_PACKET_KEYS = {
    "command",
    "have_remaining",
    "remaining_count",
    "remaining_mult",
    "remaining_length",
    "packet",
    "to_process",
    "pos",
}


@pytest.fixture
def client() -> paho.Client:
    return paho.Client(
        CallbackAPIVersion.VERSION2, client_id="paho-internals", protocol=MQTTProtocolVersion.MQTTv5, manual_ack=True
    )


def parameters(function: Callable[..., Any]) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name != "self"]


@pytest.mark.parametrize(("name", "expected"), sorted(METHODS.items()))
def test_methods_exist_with_the_parameters_ingest_client_passes(name: str, expected: list[str]) -> None:
    method = getattr(paho.Client, name, None)
    assert callable(method), f"paho.Client.{name} is gone. {RECHECK}"
    assert parameters(method) == expected, f"paho.Client.{name} takes {parameters(method)} now. {RECHECK}"


def test_easy_log_takes_printf_style_arguments() -> None:
    variadic = inspect.signature(paho.Client._easy_log).parameters["args"]
    assert variadic.kind is inspect.Parameter.VAR_POSITIONAL, (
        f"paho.Client._easy_log(level, fmt, *args) changed. {RECHECK}"
    )


def test_instance_state_has_the_kinds_ingest_client_reads(client: paho.Client) -> None:
    state = vars(client)
    expected_kinds: dict[str, type | tuple[type, ...]] = {
        "_sock": type(None),  # None until connected; loop_read checks it for the connection's end
        "_last_bytes_received": (int, float),  # written under _msgtime_mutex, as paho does
        "_manual_ack": bool,
        "_protocol": int,
        "_in_packet": dict,
    }
    for name, kind in expected_kinds.items():
        assert name in state, f"paho.Client has no attribute {name}. {RECHECK}"
        assert isinstance(state[name], kind), f"paho.Client.{name} is a {type(state[name]).__name__} now. {RECHECK}"
    assert state["_manual_ack"] is True and state["_protocol"] == paho.MQTTv5, f"constructor arguments moved. {RECHECK}"
    mutex = state.get("_msgtime_mutex")
    assert hasattr(mutex, "__enter__") and hasattr(mutex, "__exit__"), f"_msgtime_mutex is not a lock. {RECHECK}"
    assert set(state["_in_packet"]) == IN_PACKET_KEYS, f"paho's read state has other keys now. {RECHECK}"
    assert isinstance(state["_in_packet"]["packet"], bytearray), f"_in_packet['packet'] changed type. {RECHECK}"


def test_module_names_ingest_client_uses() -> None:
    assert callable(paho.time_func), f"paho.mqtt.client.time_func is gone. {RECHECK}"
    assert (paho.PUBLISH, paho.PUBACK, paho.MQTTv5) == (0x30, 0x40, 5), f"packet constants moved. {RECHECK}"
    assert isinstance(paho.MQTT_LOG_ERR, int) and isinstance(paho.MQTT_LOG_DEBUG, int), f"log levels moved. {RECHECK}"
    for code in ("MQTT_ERR_SUCCESS", "MQTT_ERR_NO_CONN", "MQTT_ERR_CONN_LOST", "MQTT_ERR_PROTOCOL"):
        assert hasattr(paho.MQTTErrorCode, code), f"MQTTErrorCode.{code} is gone. {RECHECK}"
    assert issubclass(MalformedPacket, Exception), f"paho.mqtt.exception.MalformedPacket changed. {RECHECK}"


def test_paho_calls_the_methods_ingest_client_overrides_and_reads_the_state_it_fills() -> None:
    """The overrides only take effect while paho's own loop and connect call them by name, and
    _handle_framed's packet only reaches paho's handlers through `_in_packet`."""
    in_packet = r"self\._in_packet\[['\"]{}['\"]\]"
    uses = {
        "_loop": [r"self\.loop_read\("],
        "reconnect": [r"self\._create_socket\(\)"],
        "_packet_handle": [in_packet.format("command")],
        "_handle_publish": [in_packet.format("command"), in_packet.format("packet")],
    }
    for caller, patterns in uses.items():
        source = inspect.getsource(getattr(paho.Client, caller))
        for pattern in patterns:
            assert re.search(pattern, source), f"paho.Client.{caller} no longer matches {pattern}. {RECHECK}"


def test_received_message_keeps_its_raw_topic() -> None:
    """connection.py hands on `MQTTMessage._topic` (bytes) for messages paho read itself."""
    message = paho.MQTTMessage(mid=7, topic=b"kassa/v1/dev/till-1/up/sale")
    assert message._topic == b"kassa/v1/dev/till-1/up/sale", f"MQTTMessage._topic changed. {RECHECK}"
