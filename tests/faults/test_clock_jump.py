"""The terminal's wall clock jumps back and forward by hours while the till sells.

The agent runs under libfaketime (tests/faults/clock.py): only its wall clock moves, as with
an NTP step; the monotonic clock keeps going. The documented rule (agent/licence/lease.py,
docs/architecture.md "Licence", docs/protocol.md): a sale is refused with
`licence.clock_rolled_back` while the wall clock is more than CLOCK_TOLERANCE_S behind the
latest wall-clock time the terminal has seen (its high-water mark); a lease runs out by the
monotonic clock since it arrived or by the wall clock. So:

1. back 2 h: refused (`licence.clock_rolled_back`, 403, a message saying what to do); the
   MQTT link is kicked off and must reconnect by itself, then stay up with no sale traffic
   for longer than 1.5 x keepalive — its timers run on the monotonic clock;
2. back to the true time: sales resume by themselves;
3. forward 3 h (inside the 7-day lease): sales go on;
4. back from +3 h to the true time: by the same rule this is a rollback (the terminal has
   seen +3 h), refused again;
5. the wall clock passes the latest time seen (here: set to +3 h again, as if those hours
   had passed): sales resume by themselves.

Throughout, the outbox delivers: message timestamps jump, sequence numbers do not; the cloud
ends with exactly the committed sales.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import select

from broker.launcher import Mosquitto
from cloud_api.ingest.models import IngestedMessage
from tests.faults.clock import FakeWallClock
from tests.faults.harness import SaleStream, expect_store_sound
from tests.posapi.support import DEVICE, sale_body, wait_for
from tests.support.terminal import Terminal, make_terminal

KEEPALIVE_S = 5  # the smallest the config allows: the broker drops a silent client after 1.5 x this
PHASE_SALES = 5


@pytest.fixture
def clock(tmp_path: Path) -> FakeWallClock:
    clock = FakeWallClock(tmp_path / "faketime")
    clock.check()
    return clock


@pytest.fixture
def selling(tmp_path: Path, mosquitto: Mosquitto, clock: FakeWallClock) -> Iterator[Terminal]:
    for terminal in make_terminal(tmp_path, mosquitto, env=clock.env(), keepalive_s=KEEPALIVE_S):
        terminal.ready_to_sell()
        yield terminal


def log_count(terminal: Terminal, text: str) -> int:
    return terminal.process.log().count(text)


def connected(terminal: Terminal) -> bool:
    return bool(terminal.process.client().call("status")["components"]["cloud"]["connected"])


def take_over_session(mosquitto: Mosquitto) -> None:
    """Connect with the agent's client id: the broker drops the agent's connection. Our session
    keeps the agent's (clean_start=False, same expiry), and we leave at once."""
    kicker = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=DEVICE, protocol=mqtt.MQTTv5)
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    kicker.connect(mosquitto.host, mosquitto.port, clean_start=False, properties=properties)
    kicker.loop_start()
    try:
        wait_for(kicker.is_connected, 10, "the session take-over")
    finally:
        kicker.disconnect()
        kicker.loop_stop()


def test_wall_clock_jumps_back_and_forward_by_hours(
    selling: Terminal, clock: FakeWallClock, mosquitto: Mosquitto
) -> None:
    stream = SaleStream(selling).start(every_s=0.05)
    stream.wait_sold(PHASE_SALES)
    connects = log_count(selling, "connected to broker")

    # 1. Back 2 hours: refused by the documented rule, the link unharmed.
    clock.set("-2h")
    wait_for(lambda: stream.refused["licence.clock_rolled_back"] >= 3, 10, "sales refused for the clock set back")
    stream.stop()
    reply = stream.pos().request("POST", "/v1/sales", sale_body())
    error = reply.json()["error"]
    assert reply.status_code == 403 and error["code"] == "licence.clock_rolled_back", reply.text
    assert "clock was set back" in error["message"] and "date and time" in error["message"], error
    take_over_session(mosquitto)
    wait_for(
        lambda: log_count(selling, "connected to broker") > connects and connected(selling),
        15,
        "the agent to reconnect by itself with its wall clock 2 h back",
    )
    quiet_until = time.monotonic() + 1.6 * KEEPALIVE_S  # no sale traffic: only the keepalive holds the link
    while time.monotonic() < quiet_until:
        assert connected(selling), (
            "the MQTT link dropped while the wall clock was 2 h back (keepalive on the wall clock?)"
        )
        time.sleep(0.25)
    assert log_count(selling, "connected to broker") == connects + 1, "the link reconnected more than once"

    # 2. Back to the true time: sales resume without a hand.
    clock.set("+0")
    sold, refused = stream.sold(), sum(stream.refused.values())
    stream.start(every_s=0.05)
    stream.wait_sold(sold + PHASE_SALES, 20, "sales again once the clock is right")

    # 3. Forward 3 hours, inside the lease: sales go on.
    clock.set("+3h")
    sold = stream.sold()
    stream.wait_sold(sold + PHASE_SALES, 20, "sales with the clock 3 h ahead")
    assert sum(stream.refused.values()) == refused, f"refused with the clock right or ahead: {dict(stream.refused)}"

    # 4. From +3 h back to the true time: the terminal has seen +3 h, so this is a rollback too.
    clock.set("+0")
    wait_for(
        lambda: sum(stream.refused.values()) >= refused + 3, 10, "sales refused after the clock went back from +3 h"
    )
    assert set(stream.refused) == {"licence.clock_rolled_back"}, dict(stream.refused)

    # 5. The wall clock passes the latest time seen: sales resume without a hand.
    clock.set("+3h")
    sold = stream.sold()
    stream.wait_sold(sold + PHASE_SALES, 20, "sales once the clock is past the latest time seen")
    stream.stop()
    stream.settle()
    assert connected(selling)

    stream.expect_cloud_exact()
    expect_store_sound(stream, "(clock jumps)")
    # The outbox delivered in order: timestamps jumped by hours, sequence numbers did not.
    cloud = selling.cloud
    seqs = cloud.seqs(DEVICE)
    assert seqs == list(range(seqs[0], seqs[-1] + 1)), f"sequence numbers with gaps: {seqs}"
    assert cloud.open_gaps(DEVICE) == 0
    with cloud.engine.connect() as conn:
        stamps = list(
            conn.execute(select(IngestedMessage.created_at).where(IngestedMessage.device_id == DEVICE)).scalars()
        )
    assert max(stamps) - min(stamps) > timedelta(hours=4.9), (
        f"message timestamps did not follow the clock: {min(stamps)} .. {max(stamps)}"
    )
