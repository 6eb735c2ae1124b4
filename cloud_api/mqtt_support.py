"""What every MQTT client of the cloud service does the same way (ingest worker, push publisher)."""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import paho.mqtt.client as paho

__all__ = ["set_nodelay", "set_reconnect_delay"]


def set_reconnect_delay(client: paho.Client, seconds: float) -> None:
    """Make paho wait `seconds` before its next reconnect attempt (its own doubling disabled:
    minimum and maximum are the same, and the caller draws a fresh jittered value each time)."""
    # paho annotates the delays as int but stores and waits on any number; backoff needs fractions.
    client.reconnect_delay_set(seconds, seconds)  # type: ignore[arg-type]  # paho annotates int; floats work


def set_nodelay(client: Any, userdata: Any, sock: Any) -> None:
    """paho's on_socket_open: paho leaves Nagle on, and small QoS 1 packets would then stall
    on delayed ACKs."""
    with contextlib.suppress(OSError, AttributeError):  # unix sockets / websockets have no Nagle
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
