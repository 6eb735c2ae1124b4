"""The fleet simulation (bench/fleet) end to end with 20 terminals: behaviour, not timings.

20 simulated terminals (real MQTT connections, the agent's store, outbox, licence and roster
code) against a private Mosquitto and a real `kassa-cloud worker`: all connect, bind their
licence, sell; a roster change reaches all; the broker is killed while sales drain and
restarted; all reconnect and every sale is in the cloud exactly once.
"""

from __future__ import annotations

from pathlib import Path

from bench.fleet.run import Options, run

DEVICES = 20
SALES = 3
STORM_SALES = 2


def test_fleet_of_20_end_to_end(tmp_path: Path) -> None:
    result = run(
        Options(
            devices=DEVICES,
            sales=SALES,
            storm_sales=STORM_SALES,
            cashiers=3,
            baseline=False,
            ack_timeout_s=3.0,  # a resend after the broker crash takes seconds, not the default 30
            reconnect_max_s=5.0,
            workdir=tmp_path / "fleet",
            store_dir=tmp_path / "stores",
            timeout_s=60.0,
            quiet=True,
        )
    )
    fleet = result["fleet"]

    assert fleet["connect"]["n"] == DEVICES
    assert fleet["licence"]["n"] == DEVICES
    assert fleet["refused_sales"] == 0  # every sale ran on a valid lease

    first = fleet["sales"]["cloud"]
    assert fleet["sales"]["exact"]
    assert first["rows"] == first["distinct"] == first["ledger"] == DEVICES * SALES
    assert first["devices"] == DEVICES and first["per_device_min"] == first["per_device_max"] == SALES

    for roster in (fleet["roster"], fleet["roster_after_restart"]):
        assert roster["devices"] == DEVICES  # the change gave every device a new version
        assert roster["arrival"]["n"] == DEVICES  # and every terminal parsed and adopted it

    restart = fleet["restart"]
    assert restart["reconnect"]["n"] == DEVICES
    after = restart["cloud"]
    assert restart["exact"]
    assert after["rows"] == after["distinct"] == after["ledger"] == DEVICES * (SALES + STORM_SALES)
    assert after["per_device_min"] == after["per_device_max"] == SALES + STORM_SALES
