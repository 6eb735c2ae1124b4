"""Demo step for a stolen terminal: its certificate cannot reach the fleet, and one cloud call
shuts it out of the broker.

A mixin of `Demo` (scenario.py), like business.py. The full checks are
tests/deploy/test_broker_trust.py and test_certificate_lifecycle.py.
"""

from __future__ import annotations

import queue
import time
from typing import TYPE_CHECKING

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from broker import contract as kc
from tests.demo.business import SECOND_DEVICE
from tests.deploy.tls_broker import fetch_crl
from tests.support.agent_process import AgentProcess

if TYPE_CHECKING:
    from tests.demo.scenario import Demo


class TrustSteps:
    def stolen_terminal(self: Demo) -> str:
        """With the second terminal's own certificate and key (as a thief would have them), try to
        join the cloud's ingest group; then its company revokes it, the broker host installs the
        CRL, and the terminal cannot connect any more."""
        assert self.broker is not None and self.agent2 is not None
        self.broker.broker.restart()  # the previous step stopped it
        if not self.broker.broker.wait_listening(self.broker.cloud_port):
            raise self.failure("stolen terminal", "the broker's cloud listener did not come back")
        keys = self.agent2.config_path.parent / "state" / "keys"
        refused = self._rogue_subscriptions(keys)
        _, revoked = self._api(
            self.api_token,
            "POST",
            f"/companies/{self.company_id}/devices/{SECOND_DEVICE}/certificates/revoke",
            {"reason": "stolen (demo)"},
            200,
        )
        before = self.broker.log().count("certificate verify failed")
        fetched = fetch_crl(  # what kassa-broker-crl.timer runs on the broker host every minute
            f"{self.api_url}/pki/device-crl.pem",
            self.broker.pki,
            self.broker.pki / "device-crl.pem",
            f"kill -HUP {self.broker.broker.process.pid}",
        )
        if fetched.returncode != 0:
            raise self.failure("stolen terminal", f"fetch-crl.sh failed: {fetched.stderr}")
        self._wait(
            lambda: "revoked certificate(s)" in self.broker.log().split("Reloading config.")[-1],
            "stolen terminal",
            "the broker to reload with the new CRL",
        )
        self.agent2 = AgentProcess(self.agent2.config_path).start()
        self._wait(
            lambda: self.broker.log().count("certificate verify failed") > before,
            "stolen terminal",
            "the broker to refuse the revoked certificate",
        )
        if self.agent2.client().call("status")["components"]["cloud"]["connected"]:
            raise self.failure("stolen terminal", "the revoked terminal is connected")
        if self.agent2.stop() != 0:
            raise self.failure("stolen terminal", "the revoked terminal did not stop cleanly")
        return (
            f"its certificate's subscriptions refused ({refused}); one call revoked {len(revoked['revoked'])} "
            f"certificate(s), CRL {revoked['crl_number']} installed by fetch-crl.sh; the terminal is refused at TLS"
        )

    def _rogue_subscriptions(self: Demo, keys) -> str:
        assert self.broker is not None
        acks: queue.Queue[list[int]] = queue.Queue()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=SECOND_DEVICE, protocol=mqtt.MQTTv5)
        client.tls_set(
            ca_certs=str(keys / "broker-ca.crt"), certfile=str(keys / "broker.crt"), keyfile=str(keys / "broker.key")
        )
        client.username_pw_set(SECOND_DEVICE)  # the devices' listener wants the certificate's name
        client.on_subscribe = lambda _c, _u, _mid, codes, _p: acks.put([code.value for code in codes])
        connected: queue.Queue[bool] = queue.Queue()
        client.on_connect = lambda _c, _u, _f, code, _p: connected.put(not code.is_failure)
        client.connect("127.0.0.1", self.broker.device_port)
        client.loop_start()
        try:
            if not connected.get(timeout=10):
                raise self.failure("stolen terminal", "the broker refused the stolen certificate before it was revoked")
            filters = [kc.CLOUD_INGEST_SUBSCRIPTION, "#"]
            for topic_filter in filters:
                client.subscribe(topic_filter, qos=1)
                codes = acks.get(timeout=10)
                if codes != [135]:
                    raise self.failure(
                        "stolen terminal", f"the broker granted {topic_filter} to a device certificate: {codes}"
                    )
        finally:
            client.disconnect()
            client.loop_stop()
            time.sleep(0.1)
        return ", ".join(f"{f}: 135" for f in filters)
