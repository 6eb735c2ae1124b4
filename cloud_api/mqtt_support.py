"""What every MQTT client of the cloud service does the same way (ingest worker, push publisher)."""

from __future__ import annotations

import socket
from typing import Any

__all__ = ["set_nodelay"]


def set_nodelay(client: Any, userdata: Any, sock: Any) -> None:
    """paho's on_socket_open: paho leaves Nagle on, and small QoS 1 packets would then stall
    on delayed ACKs."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass
