"""The production Mosquitto config run on loopback, and paho clients that log in with certificates.

``production_config`` takes broker/production/mosquitto.conf and the ACLs as shipped and only
moves what must move for a test: the two listener ports, the file paths (into a temp dir, the
device listener's plugin built from broker/production/kassa_device_acl.c into build/) and the
user Mosquitto runs as. Every other line is the production one.
"""

from __future__ import annotations

import os
import pwd
import queue
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from broker.device_acl_plugin import build as build_plugin
from broker.launcher import Mosquitto, free_port
from tests.support.agent_process import REPO_ROOT

PRODUCTION = REPO_ROOT / "broker" / "production"
MAKE_CERTS = PRODUCTION / "make-certs.sh"
FETCH_CRL = PRODUCTION / "fetch-crl.sh"
DEVICE_LISTENER = "listener 8883"
CLOUD_LISTENER = "listener 8884 127.0.0.1"
PLUGIN = REPO_ROOT / "build" / "kassa_device_acl.so"
NOT_AUTHORIZED = 135  # the MQTT 5 reason code of a refused PUBLISH, SUBSCRIBE or CONNECT


def dev(device_id: str, rest: str) -> str:
    """A topic of a device: kassa/v1/dev/<id>/<rest>."""
    return f"kassa/v1/dev/{device_id}/{rest}"


def device_acl_plugin() -> Path:
    """The devices' listener plugin, built (again) when its source is newer."""
    return build_plugin(PLUGIN)


def make_certs(out: Path, *device_ids: str, days: int = 400) -> subprocess.CompletedProcess[str]:
    """The PKI of broker/production/make-certs.sh. Certificates the cloud issues never outlive the
    device CA, so its `days` must stay above the agent's 30-day renewal margin: terminals in tests
    renew only where a test asks for it (short `device_cert_days`)."""
    return subprocess.run(
        ["sh", str(MAKE_CERTS), "--out", str(out), "--days", str(days), *device_ids],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def fetch_crl(
    url: str, pki: Path, out: Path, reload_command: str, cacert: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """broker/production/fetch-crl.sh as kassa-broker-crl.timer runs it: the CRL at `url` must be
    signed by `pki`'s device CA to be installed at `out`; `cacert` checks an HTTPS `url`."""
    https = ["--cacert", str(cacert)] if cacert is not None else []
    return subprocess.run(
        [
            "sh",
            str(FETCH_CRL),
            "--url",
            url,
            *https,
            "--ca",
            str(pki / "device-ca.crt"),
            "--out",
            str(out),
            "--reload-command",
            reload_command,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@dataclass
class ProductionBroker:
    broker: Mosquitto
    device_port: int
    cloud_port: int
    pki: Path

    def log(self) -> str:
        return self.broker.log_path.read_text(errors="replace") if self.broker.log_path.exists() else ""

    def wait_for_log(self, text: str, count: int = 1, timeout_s: float = 10) -> str:
        """The log once `text` appears in it `count` times (the broker writes it after the client
        has already seen the connection end)."""
        deadline = time.monotonic() + timeout_s
        while (log := self.log()).count(text) < count:
            assert time.monotonic() < deadline, (
                f"{text!r} not logged {count} times within {timeout_s} s:\n{self.broker.log_tail()}"
            )
            time.sleep(0.02)
        return log

    def reload(self, timeout_s: float = 10) -> None:
        """SIGHUP, as `systemctl reload mosquitto` does (certificates, CRL, ACLs, plugins' reload
        hook); returns once the broker has logged the reload."""
        process = self.broker.process
        assert process is not None
        before = self.log().count("Reloading config.")
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout_s
        while self.log().count("Reloading config.") == before:
            assert time.monotonic() < deadline, f"no reload logged within {timeout_s} s:\n{self.broker.log_tail()}"
            time.sleep(0.02)


def production_config(
    workdir: Path,
    pki: Path,
    device_port: int,
    cloud_port: int,
    acl_text: str | None = None,
    crl: Path | None = None,
    config_text: str | None = None,
) -> Path:
    """A runnable copy of the production config; fails if a production path was left in it.

    ``acl_text`` replaces the cloud listener's ACL; ``crl`` the device CA's CRL (default the
    one make-certs.sh made in ``pki``); ``config_text`` a variant of mosquitto.conf itself."""
    text = config_text if config_text is not None else (PRODUCTION / "mosquitto.conf").read_text()
    lines = text.splitlines()
    assert lines.count(DEVICE_LISTENER) == 1 and lines.count(CLOUD_LISTENER) == 1, (
        "listener lines changed: update tests/deploy/tls_broker.py"
    )
    acl_devices, acl_cloud = workdir / "acl-devices", workdir / "acl-cloud"
    acl_devices.write_text((PRODUCTION / "acl-devices").read_text())
    acl_cloud.write_text(acl_text if acl_text is not None else (PRODUCTION / "acl-cloud").read_text())
    crl = crl or pki / "device-crl.pem"
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    replacements = {
        DEVICE_LISTENER: f"listener {device_port} 127.0.0.1",
        CLOUD_LISTENER: f"listener {cloud_port} 127.0.0.1",
        "cafile /etc/mosquitto/kassa/device-ca.crt": f"cafile {pki / 'device-ca.crt'}",
        "cafile /etc/mosquitto/kassa/cloud-ca.crt": f"cafile {pki / 'cloud-ca.crt'}",
        "certfile /etc/mosquitto/kassa/server.crt": f"certfile {pki / 'server.crt'}",
        "keyfile /etc/mosquitto/kassa/server.key": f"keyfile {pki / 'server.key'}",
        "crlfile /etc/mosquitto/kassa/device-crl.pem": f"crlfile {crl}",
        "plugin_opt_crl_file /etc/mosquitto/kassa/device-crl.pem": f"plugin_opt_crl_file {crl}",
        "plugin_opt_ca_file /etc/mosquitto/kassa/device-ca.crt": f"plugin_opt_ca_file {pki / 'device-ca.crt'}",
        "plugin /usr/local/lib/kassa/kassa_device_acl.so": f"plugin {device_acl_plugin()}",
        "acl_file /etc/mosquitto/kassa/acl-devices": f"acl_file {acl_devices}",
        "acl_file /etc/mosquitto/kassa/acl-cloud": f"acl_file {acl_cloud}",
        "persistence_location /var/lib/mosquitto/": f"persistence_location {workdir / 'data'}/",
        "pid_file /run/mosquitto/mosquitto.pid": f"pid_file {workdir / 'mosquitto.pid'}",
        "log_dest file /var/log/mosquitto/mosquitto.log": f"log_dest file {workdir / 'mosquitto.log'}",
    }
    out = []
    for line in lines:
        out.append(replacements.get(line, line))
    rewritten = "\n".join(out)
    leftovers = [
        line for line in out if re.search(r"(^|\s)/(etc|var|run|usr)/", line) and not line.lstrip().startswith("#")
    ]
    assert not leftovers, f"production paths not rewritten for the test: {leftovers}"
    # Started as root, Mosquitto would switch to user 'mosquitto', which cannot read our temp dir.
    rewritten += f"\nuser {pwd.getpwuid(os.geteuid()).pw_name}\n"
    config = workdir / "mosquitto.conf"
    config.write_text(rewritten)
    return config


def start_production_broker(
    workdir: Path, pki: Path, acl_text: str | None = None, crl: Path | None = None, config_text: str | None = None
) -> ProductionBroker:
    workdir.mkdir(parents=True, exist_ok=True)
    last: Exception | None = None
    for _attempt in range(3):  # a free port can be taken between choosing and binding it
        device_port, cloud_port = free_port(), free_port()
        if device_port == cloud_port:
            continue
        config = production_config(workdir, pki, device_port, cloud_port, acl_text, crl, config_text)
        broker = Mosquitto(workdir, port=device_port, config_file=config)
        try:
            broker.start()
        except Exception as exc:
            last = exc
            continue
        if broker.wait_listening(cloud_port):  # the cloud listener binds after the device one
            return ProductionBroker(broker, device_port, cloud_port, pki)
        broker.kill()
        last = AssertionError(f"cloud listener {cloud_port} never accepted:\n{broker.log_tail()}")
    raise AssertionError(f"production broker did not start: {last}")


class Peer:
    """One paho client (MQTT 5, TLS) whose callbacks land in queues the test can wait on."""

    def __init__(
        self,
        port: int,
        pki: Path,
        cn: str | None,
        *,
        client_id: str = "",
        ca: Path | None = None,
        cert_dir: Path | None = None,
        username: str | None = None,
        tls: bool = True,
        will: tuple[str, bytes] | None = None,
        protocol: int = mqtt.MQTTv5,
    ) -> None:
        self.port = port
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or (cn or "anon"), protocol=protocol)
        if tls:
            certs = cert_dir or pki / "clients"
            self.client.tls_set(
                ca_certs=str(ca or pki / "cloud-ca.crt"),  # the broker's certificate is the cloud CA's
                certfile=str(certs / f"{cn}.crt") if cn else None,
                keyfile=str(certs / f"{cn}.key") if cn else None,
            )
        # Devices send their id as username (the devices' listener checks it against the CN); the
        # cloud's listener takes the CN and ignores what is sent.
        if username is not None or cn is not None:
            self.client.username_pw_set(username if username is not None else cn, "ignored")
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connects: queue.Queue[ReasonCode] = queue.Queue()
        self.disconnects: queue.Queue[ReasonCode] = queue.Queue()
        self._acks: dict[int, Any] = {}
        self._acked = threading.Condition()
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg)
        self.client.on_connect = lambda _c, _u, _f, rc, _p: self.connects.put(rc)
        self.client.on_disconnect = lambda _c, _u, _f, rc, _p: self.disconnects.put(rc)
        self.client.on_subscribe = lambda _c, _u, mid, rcs, _p: self._ack(mid, list(rcs))
        self.client.on_publish = lambda _c, _u, mid, rc, _p: self._ack(mid, rc)

    def _ack(self, mid: int, value: Any) -> None:
        with self._acked:
            self._acks[mid] = value
            self._acked.notify_all()

    def _wait_ack(self, mid: int, timeout_s: float) -> Any:
        with self._acked:
            if not self._acked.wait_for(lambda: mid in self._acks, timeout_s):
                raise AssertionError(f"no ack for mid {mid} within {timeout_s} s")
            return self._acks.pop(mid)

    def connect(self, timeout_s: float = 10) -> ReasonCode:
        """Connect and return the CONNACK reason code; raise if the broker never answers."""
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        try:
            return self.connects.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(f"no CONNACK within {timeout_s} s") from None

    def try_connect(self, timeout_s: float = 5) -> str:
        """What happened to a connection attempt: 'connected', 'refused: ...'. Never reconnects."""
        self.client.reconnect_delay_set(60, 60)
        try:
            self.client.connect("127.0.0.1", self.port, keepalive=30)
        except OSError as exc:  # ssl.SSLError is an OSError: the handshake itself failed
            return f"refused: {type(exc).__name__}: {exc}"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:  # drive the network loop here: no reconnects behind our back
            rc = self.client.loop(timeout=0.05)
            try:
                code = self.connects.get_nowait()
                return "connected" if not code.is_failure else f"refused: CONNACK {code}"
            except queue.Empty:
                pass
            if rc != mqtt.MQTT_ERR_SUCCESS:
                return f"refused: connection lost ({mqtt.error_string(rc)})"
        return "refused: no CONNACK"

    def subscribe(self, topic_filter: str, timeout_s: float = 10) -> list[ReasonCode]:
        result, mid = self.client.subscribe(topic_filter, qos=1)
        assert result == mqtt.MQTT_ERR_SUCCESS, result
        return self._wait_ack(mid, timeout_s)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, timeout_s: float = 10) -> ReasonCode:
        """Publish at QoS 1 and return the PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, info.rc
        return self._wait_ack(info.mid, timeout_s)

    def next_message(self, timeout_s: float = 10) -> mqtt.MQTTMessage:
        try:
            return self.messages.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(f"no message within {timeout_s} s") from None

    def pending(self) -> list[tuple[str, bytes]]:
        out = []
        while True:
            try:
                msg = self.messages.get_nowait()
            except queue.Empty:
                return out
            out.append((msg.topic, bytes(msg.payload)))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
