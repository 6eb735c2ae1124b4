"""What every MQTT client of the cloud service does the same way (ingest worker, push publisher)."""

from __future__ import annotations

import random
import socket
from typing import Any

__all__ = ["backoff_delay", "set_nodelay"]


def backoff_delay(attempt: int, minimum: float, maximum: float) -> float:
    """Full-jitter exponential backoff, so clients do not retry in lock-step."""
    ceiling = min(maximum, minimum * 2 ** min(attempt, 30))
    return random.uniform(minimum, max(minimum, ceiling))


def set_nodelay(client: Any, userdata: Any, sock: Any) -> None:
    """paho's on_socket_open: paho leaves Nagle on, and small QoS 1 packets would then stall
    on delayed ACKs."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass
