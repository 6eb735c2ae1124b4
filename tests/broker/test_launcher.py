from __future__ import annotations

import queue

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from broker.launcher import Mosquitto


def _client(broker: Mosquitto, received: queue.Queue[tuple[str, bytes]] | None = None) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if received is not None:
        client.on_message = lambda _c, _u, msg: received.put((msg.topic, msg.payload))
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def test_publish_subscribe_round_trip(mosquitto: Mosquitto) -> None:
    received: queue.Queue[tuple[str, bytes]] = queue.Queue()
    sub = _client(mosquitto, received)
    sub.subscribe("kassa/test/#", qos=1)[0]
    pub = _client(mosquitto)
    try:
        # subscribe is asynchronous: publish until the subscription is in place
        for _ in range(50):
            pub.publish("kassa/test/a", b"hello", qos=1).wait_for_publish(5)
            try:
                assert received.get(timeout=0.2) == ("kassa/test/a", b"hello")
                break
            except queue.Empty:
                continue
        else:
            raise AssertionError("message never arrived")
    finally:
        for c in (sub, pub):
            c.loop_stop()
            c.disconnect()


def test_kill_and_restart_on_same_port_keeps_retained_state(mosquitto: Mosquitto) -> None:
    port = mosquitto.port
    pub = _client(mosquitto)
    pub.publish("kassa/test/retained", b"v1", qos=1, retain=True).wait_for_publish(5)
    pub.loop_stop()
    pub.disconnect()
    mosquitto.restart()  # clean stop writes persistence
    assert mosquitto.port == port and mosquitto.running
    mosquitto.restart(hard=True)  # SIGKILL; what was saved before is still there
    assert mosquitto.port == port and mosquitto.running
    received: queue.Queue[tuple[str, bytes]] = queue.Queue()
    sub = _client(mosquitto, received)
    sub.subscribe("kassa/test/retained", qos=1)
    try:
        assert received.get(timeout=10) == ("kassa/test/retained", b"v1")
    finally:
        sub.loop_stop()
        sub.disconnect()


def test_kill_stops_accepting_connections(mosquitto: Mosquitto) -> None:
    import socket

    mosquitto.kill()
    assert not mosquitto.running
    try:
        socket.create_connection((mosquitto.host, mosquitto.port), timeout=1).close()
    except OSError:
        pass
    else:
        raise AssertionError("broker still accepting after kill")
