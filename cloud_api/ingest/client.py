"""The ingest worker's MQTT client: paho with a busy subscriber's per-message costs removed,
plus the TLS settings the worker uses.

It relies on paho's private members; tests/cloud/test_paho_internals.py lists each of them,
and pyproject.toml pins paho to the minor version that test passes on."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.exception import MalformedPacket

__all__ = ["IngestClient", "TlsFiles"]


@dataclass(frozen=True)
class TlsFiles:
    """Where the worker finds its TLS material for the production broker's cloud listener."""

    ca_file: str
    cert_file: str | None = None
    key_file: str | None = None


_PUBACK = struct.Struct("!BBH")


class IngestClient(paho.Client):
    """paho's client with the per-message costs of a busy subscriber taken out of its loop.

    - Reads: paho reads every packet with three recv() calls (type, length, rest) after a
      select(), and builds a Properties object (never read here), an MQTTMessage and a
      topic-matcher pass for each PUBLISH. `loop_read` here takes whatever the socket holds
      (up to 256 KiB) and frames every complete packet in it; a QoS 0/1 PUBLISH goes straight
      to `on_publish_received(mid, qos, topic, payload)`, every other packet to paho's own
      handler, exactly as paho would have read it. A partial packet waits for more bytes.
    - PUBACKs: `ack()` queues one packet and wakes the network thread once per message.
      `ack_many` queues all of a batch's PUBACKs as one write.
    Requires manual_ack (nothing is PUBACKed on receipt) and MQTT 5 for the PUBLISH shortcut;
    without them every packet takes paho's path.
    """

    _READ_SIZE = 256 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unframed = b""
        self.on_publish_received: Callable[[int, int, bytes, bytes], None] | None = None

    def _create_socket(self) -> Any:
        self._unframed = b""  # nothing of an old connection survives
        return super()._create_socket()

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        if self._sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        try:
            data = self._sock_recv(self._READ_SIZE)
        except BlockingIOError:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        except OSError as err:
            self._easy_log(paho.MQTT_LOG_ERR, "failed to receive on socket: %s", err)
            return self._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
        if not data:
            return self._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
        with self._msgtime_mutex:
            self._last_bytes_received = paho.time_func()
        buffer = self._unframed + data if self._unframed else data
        size = len(buffer)
        sink = self.on_publish_received
        if not self._manual_ack or self._protocol != paho.MQTTv5:
            sink = None
        pos = 0
        while pos < size:
            # Fixed header: packet type and flags, then the remaining length (1-4 bytes).
            command = buffer[pos]
            length = shift = 0
            index = pos + 1
            while True:
                if index >= size:
                    self._unframed = buffer[pos:]
                    return MQTTErrorCode.MQTT_ERR_SUCCESS
                byte = buffer[index]
                index += 1
                length |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    break
                shift += 7
                if shift > 21:
                    return self._loop_rc_handle(MQTTErrorCode.MQTT_ERR_PROTOCOL)
            end = index + length
            if end > size:
                break
            qos = (command & 0x06) >> 1
            if sink is not None and command & 0xF0 == paho.PUBLISH and qos < 2:
                rc = self._publish_received(sink, qos, buffer, index, end)
            else:
                rc = self._handle_framed(command, buffer[index:end])
            pos = end
            if rc:
                return self._loop_rc_handle(rc)
            if self._sock is None:  # a handler closed the connection (e.g. DISCONNECT)
                return MQTTErrorCode.MQTT_ERR_SUCCESS
        self._unframed = buffer[pos:]
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    @staticmethod
    def _publish_received(
        sink: Callable[[int, int, bytes, bytes], None], qos: int, buffer: bytes, start: int, end: int
    ) -> MQTTErrorCode:
        """A QoS 0/1 PUBLISH: topic, packet id, properties (skipped), payload."""
        if end - start < 2:
            return MQTTErrorCode.MQTT_ERR_PROTOCOL
        position = start + 2 + int.from_bytes(buffer[start : start + 2], "big")
        topic = buffer[start + 2 : position]
        mid = 0
        if qos:
            mid = int.from_bytes(buffer[position : position + 2], "big")
            position += 2
        length = shift = 0
        while True:
            if position >= end or shift > 21:
                return MQTTErrorCode.MQTT_ERR_PROTOCOL
            byte = buffer[position]
            position += 1
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
        position += length
        if position > end or (qos and mid == 0):
            return MQTTErrorCode.MQTT_ERR_PROTOCOL
        sink(mid, qos, topic, buffer[position:end])
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _handle_framed(self, command: int, packet: bytes) -> MQTTErrorCode:
        """Any other packet: paho's handler, with paho's read state as its reader leaves it."""
        self._in_packet = {
            "command": command,
            "have_remaining": 1,
            "remaining_count": [],
            "remaining_mult": 1,
            "remaining_length": len(packet),
            "packet": bytearray(packet),
            "to_process": 0,
            "pos": 0,
        }
        try:
            rc = self._packet_handle()
        except MalformedPacket as exc:
            self._easy_log(paho.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        self._in_packet = {
            "command": 0,
            "have_remaining": 0,
            "remaining_count": [],
            "remaining_mult": 1,
            "remaining_length": 0,
            "packet": bytearray(b""),
            "to_process": 0,
            "pos": 0,
        }
        return rc

    def ack_many(self, mids: Iterable[int]) -> None:
        """PUBACK (reason Success, no properties) each QoS 1 message id, in one write."""
        packet = b"".join([_PUBACK.pack(paho.PUBACK, 2, mid) for mid in mids])
        if packet:
            self._packet_queue(paho.PUBACK, packet, 0, 0)
