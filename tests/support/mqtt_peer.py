"""A raw paho client playing "the cloud" or "a device" in tests."""

from __future__ import annotations

import queue
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from broker import contract as kc
from broker.launcher import Mosquitto


class MqttPeer:
    """`unbatch`: an up/batch publish is queued as its messages, each with its own up topic,
    so a test reads what a device sent the way a cloud applies it."""

    def __init__(self, broker: Mosquitto, client_id: str = "", *, unbatch: bool = True) -> None:
        self.messages: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
        self.unbatch = unbatch
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_message(self, _client: Any, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        split = kc.split_batch(msg.topic, msg.payload) if self.unbatch and kc.batch_device(msg.topic) else None
        if split is None or isinstance(split, kc.Rejection):
            self.messages.put((msg.topic, bytes(msg.payload), bool(msg.retain)))
            return
        device_id, lines = split
        for index, line in enumerate(lines):
            parsed = kc.parse_batch_line(device_id, line, index)
            self.messages.put((parsed.topic.topic if isinstance(parsed, kc.Parsed) else msg.topic, line, False))

    def subscribe(self, topic: str) -> None:
        result, _mid = self.client.subscribe(topic, qos=1)
        assert result == mqtt.MQTT_ERR_SUCCESS
        time.sleep(0.1)  # SUBACK is asynchronous; give the broker a moment

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def send(self, envelope: kc.Envelope) -> None:
        pub = kc.publication(envelope)
        self.publish(pub.topic, pub.payload, pub.retain)

    def next_message(self, timeout_s: float = 10) -> tuple[str, bytes, bool]:
        return self.messages.get(timeout=timeout_s)

    def next_parsed(self, timeout_s: float = 10, topic_suffix: str = "") -> kc.Parsed:
        deadline = time.monotonic() + timeout_s
        while True:
            topic, payload, _retain = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            if topic.endswith(topic_suffix):
                parsed = kc.parse_message(topic, payload)
                assert isinstance(parsed, kc.Parsed), parsed
                return parsed

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def __enter__(self) -> MqttPeer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
