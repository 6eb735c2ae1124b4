"""The licence component on a real store: every refusal with its own code, releases, restarts.

The cloud link is replaced by its real ``Inbound`` (what the link hands documents and
commands to); the MQTT path is covered in tests/cloudlink/test_licence_flow.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.cloud.inbound import Inbound
from agent.cloud.port import CloudPort
from agent.config import load_config
from agent.licence import store as db
from agent.licence.component import Licence
from broker import contract as kc
from broker.contract import licence as kl
from broker.contract.signing import public_key_fingerprint
from tests.support.agent_process import write_agent_config
from tests.support.licence import (
    T0,
    WEEK,
    Clocks,
    flip,
    identity_public_key,
    lease_token,
    licence_doc,
    release_command,
    trust_section,
)
from tests.support.runtime import runtime_for

DEVICE = "pos-0001"


class Terminal:
    """An agent's store and licence component, with the cloud's inbound path, and restarts."""

    def __init__(self, directory: Path) -> None:
        self.config_path = write_agent_config(directory, device_id=DEVICE, extra=trust_section())
        self.clocks = Clocks()
        self.version = 0
        self.boot()

    def boot(self) -> None:
        self.agent = runtime_for(load_config(self.config_path))
        self.cloud = CloudPort(Inbound(self.agent.store, self.agent.outbox, DEVICE))
        # The link's connection flag is all the licence reads of it; tests flip it.
        self.link = SimpleNamespace(mqtt=SimpleNamespace(connected=False, last_error=None))
        self.cloud.link = self.link  # type: ignore[assignment]
        self.licence = Licence(self.agent, self.cloud, wall=self.clocks.wall, mono=self.clocks.mono)
        self.licence.load()
        self.inbound = self.cloud.inbound

    def restart(self, mono_jump: float = 50_000.0) -> None:
        self.licence.persist_high_water()
        self.agent.store.close()
        self.clocks.mono_now += mono_jump  # a new boot: the monotonic clock means nothing across it
        self.boot()

    def close(self) -> None:
        self.agent.store.close()

    @property
    def device_key(self) -> str:
        return self.licence.device_key_fingerprint

    def token(self, **claims) -> str:
        claims.setdefault("issued_at", self.clocks.wall_now)
        return lease_token(DEVICE, self.device_key, **claims)

    def push(self, *tokens: str) -> None:
        self.version += 1
        assert self.inbound.handle_state(licence_doc(self.version, list(tokens), DEVICE))

    def code(self) -> str:
        return self.licence.sale_verdict().code

    def up(self, kind: str) -> list[kc.Envelope]:
        """Up/licence messages of ``kind`` in the outbox, oldest first."""
        found = []
        for row in self.licence.outbox.after(0, 1000):
            parsed = kc.parse_message(row.topic, row.payload)
            assert isinstance(parsed, kc.Parsed)
            if getattr(parsed.body, "kind", None) == kind:
                found.append(parsed.envelope)
        return found


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(tmp_path / "agent")
    yield term
    term.close()


def test_no_licence_refuses_with_licence_none(terminal: Terminal) -> None:
    verdict = terminal.licence.sale_verdict()
    assert (verdict.ok, verdict.code) == (False, "licence.none")
    assert "licence key" in verdict.message


def test_valid_lease_allows_sales_and_is_reported(terminal: Terminal) -> None:
    terminal.push(terminal.token())
    verdict = terminal.licence.sale_verdict()
    assert (
        verdict.ok and verdict.code == "ok" and verdict.licence_id == "LIC-1" and verdict.expires_at == int(T0) + WEEK
    )
    report = terminal.up("lease_report")[-1].body
    assert [(h.licence_id, h.epoch) for h in report.leases] == [("LIC-1", 1)] and report.tombstones == []


@pytest.mark.parametrize("part", [0, 1], ids=["body", "signature"])
def test_tampered_token_is_refused(terminal: Terminal, part: int) -> None:
    terminal.push(flip(terminal.token(), part))
    assert terminal.code() == "licence.tampered"


def test_token_for_another_device_is_refused(terminal: Terminal) -> None:
    terminal.push(lease_token("pos-9999", terminal.device_key, issued_at=T0))
    assert terminal.code() == "licence.wrong_device"


def test_token_for_another_device_key_is_refused(terminal: Terminal) -> None:
    other_key = public_key_fingerprint(Ed25519PrivateKey.generate().public_key())
    terminal.push(lease_token(DEVICE, other_key, issued_at=T0))
    assert terminal.code() == "licence.wrong_device"


def test_token_signed_by_an_unpinned_key_is_refused(terminal: Terminal) -> None:
    terminal.push(terminal.token(key=Ed25519PrivateKey.generate(), key_id="rogue"))
    assert terminal.code() == "licence.unknown_signer"


def test_older_epoch_than_seen_is_refused(terminal: Terminal) -> None:
    terminal.push(terminal.token(epoch=3))
    terminal.push()  # taken away
    assert terminal.code() == "licence.released"
    terminal.push(terminal.token(epoch=2))
    assert terminal.code() == "licence.old_epoch"


def test_issued_more_than_5_minutes_ahead_is_refused(terminal: Terminal) -> None:
    terminal.push(terminal.token(issued_at=T0 + 301))
    assert terminal.code() == "licence.issued_in_future"
    terminal.push(terminal.token(issued_at=T0 + 299))  # within the allowance
    assert terminal.code() == "ok"


def test_expired_by_wall_clock(terminal: Terminal) -> None:
    terminal.push(terminal.token(lifetime_s=3600))
    terminal.clocks.wall_now += 3600  # only the wall clock moved (e.g. after a reboot)
    assert terminal.code() == "licence.expired"


def test_expired_by_monotonic_clock_even_if_wall_clock_is_held(terminal: Terminal) -> None:
    terminal.push(terminal.token(lifetime_s=3600))
    terminal.clocks.mono_now += 3600  # the wall clock was stopped or set back just below the tolerance
    assert terminal.code() == "licence.expired"


def test_wall_clock_moved_back_is_refused(terminal: Terminal) -> None:
    terminal.push(terminal.token())
    terminal.clocks.advance(600)
    assert terminal.code() == "ok"  # the high-water mark is now T0 + 600
    terminal.clocks.wall_now -= 121
    assert terminal.code() == "licence.clock_rolled_back"
    terminal.clocks.wall_now += 121
    assert terminal.code() == "ok"


def test_release_command_stops_sales_and_answers_with_a_device_signed_receipt(terminal: Terminal) -> None:
    terminal.push(terminal.token(epoch=2))
    command = release_command("LIC-1", 2, DEVICE)
    terminal.inbound.handle_command(command)
    assert terminal.code() == "licence.released"
    replies = [
        e
        for e in (kc.parse_message(r.topic, r.payload).envelope for r in terminal.licence.outbox.after(0, 100))
        if e.type == kc.MessageType.REPLY
    ]
    reply = replies[-1].body
    assert reply.ok and replies[-1].correlation_id == command.id
    claims = kl.read_release(reply.result["receipt"], identity_public_key(terminal.agent.config.paths.state_dir))
    assert (claims.licence_id, claims.epoch, claims.device_id) == ("LIC-1", 2, DEVICE)
    receipt_msg = terminal.up("release_receipt")[-1].body
    assert (receipt_msg.licence_id, receipt_msg.epoch, receipt_msg.receipt) == ("LIC-1", 2, reply.result["receipt"])
    # a new command for the same release (not a redelivery) gets the same receipt, not a new one
    assert terminal.licence.releaser.command({"licence_id": "LIC-1", "epoch": 2}) == {
        "receipt": reply.result["receipt"]
    }
    assert len(terminal.up("release_receipt")) == 1
    # the cloud's doc still listing that epoch does not bring it back
    terminal.push(terminal.token(epoch=2))
    assert terminal.code() == "licence.released"


def test_release_of_a_licence_never_held_is_an_error_reply(terminal: Terminal) -> None:
    from agent.cloud.inbound import CommandError

    with pytest.raises(CommandError) as refused:
        terminal.licence.releaser.command({"licence_id": "LIC-X", "epoch": 1})
    assert refused.value.code == "licence.not_held"
    with pytest.raises(CommandError) as bad:
        terminal.licence.releaser.command({"licence_id": "LIC-X", "epoch": "1"})
    assert bad.value.code == "bad_args"


def test_release_of_an_older_epoch_once_held_answers_with_a_receipt_and_keeps_the_newer(terminal: Terminal) -> None:
    terminal.push(terminal.token(epoch=5))
    result = terminal.licence.releaser.command({"licence_id": "LIC-1", "epoch": 4})
    assert kl.read_release(result["receipt"], identity_public_key(terminal.agent.config.paths.state_dir)).epoch == 4
    assert terminal.code() == "ok"


def test_newer_doc_without_the_lease_releases_it_with_a_tombstone(terminal: Terminal) -> None:
    terminal.push(terminal.token(licence_id="LIC-A"), terminal.token(licence_id="LIC-B", lifetime_s=WEEK - 10))
    assert terminal.licence.sale_verdict().licence_id == "LIC-A"  # the one that lasts longest
    terminal.push(terminal.token(licence_id="LIC-B", lifetime_s=WEEK - 10))
    assert terminal.licence.sale_verdict().licence_id == "LIC-B"
    report = terminal.up("lease_report")[-1].body
    assert [t.licence_id for t in report.tombstones] == ["LIC-A"]
    terminal.push()
    assert terminal.code() == "licence.released"
    stones = db.tombstones(terminal.agent.store.read())
    assert sorted((t.licence_id, t.cause) for t in stones) == [("LIC-A", "taken_away"), ("LIC-B", "taken_away")]


def test_unreadable_token_in_a_doc_does_not_release_the_held_lease(terminal: Terminal) -> None:
    terminal.push(terminal.token())
    terminal.push(flip(terminal.token(), 1))
    assert terminal.code() == "ok"


def test_a_renewed_lease_refused_by_a_slow_clock_keeps_the_held_one(terminal: Terminal) -> None:
    """The cloud renews with its own time; a terminal whose clock is behind refuses the new token
    as issued in the future. The document still lists the licence: the held lease is kept (no
    tombstone, sales go on) until it runs out, rather than given back to the cloud."""
    terminal.push(terminal.token())
    terminal.push(terminal.token(issued_at=terminal.clocks.wall_now + 600))
    assert terminal.code() == "ok"
    assert db.tombstones(terminal.agent.store.read()) == []
    report = terminal.up("lease_report")[-1].body
    assert [lease.licence_id for lease in report.leases] == ["LIC-1"] and report.tombstones == []
    terminal.push()  # a document that really leaves it out still takes it away
    assert terminal.code() == "licence.released"


def test_newer_epoch_replaces_older(terminal: Terminal) -> None:
    terminal.push(terminal.token(epoch=1))
    terminal.push(terminal.token(epoch=2))
    assert terminal.licence.status()["epoch"] == 2
    assert db.highest_epochs(terminal.agent.store.read()) == {"LIC-1": 2}


def test_restart_keeps_lease_epoch_and_high_water(terminal: Terminal) -> None:
    terminal.push(terminal.token(epoch=3))
    terminal.clocks.advance(1000)
    assert terminal.code() == "ok"
    terminal.restart()
    assert terminal.code() == "ok" and terminal.licence.status()["epoch"] == 3
    assert db.highest_epochs(terminal.agent.store.read()) == {"LIC-1": 3}
    # the high-water mark survived: setting the clock back before the restart's time is seen
    terminal.clocks.wall_now -= 500
    terminal.restart()
    assert terminal.code() == "licence.clock_rolled_back"


def test_released_state_survives_restart(terminal: Terminal) -> None:
    terminal.push(terminal.token())
    terminal.licence.releaser.command({"licence_id": "LIC-1", "epoch": 1})
    terminal.restart()
    assert terminal.code() == "licence.released"


def test_token_corrupted_in_the_store_is_refused_after_restart(terminal: Terminal) -> None:
    good = terminal.token()
    terminal.push(good)
    with terminal.agent.store.transaction() as conn:
        conn.execute("UPDATE licence_leases SET token = ?", (flip(good, 0),))
    terminal.restart()
    assert terminal.code() == "licence.tampered"
    assert terminal.licence.status()["held"] == []


def test_status_never_shows_keys_or_tokens(terminal: Terminal) -> None:
    token = terminal.token()
    terminal.push(token)
    key = kc.format_licence_key(kl.new_licence_key())
    terminal.licence.enter_key(key.lower())
    status = terminal.licence.status()
    text = json.dumps(status)
    assert token not in text and kc.normalize_licence_key(key) not in text and key not in text
    assert status["bind_request"]["key_hint"] == "..." + kc.normalize_licence_key(key)[-4:]
    assert status["licence_id"] == "LIC-1" and status["code"] == "ok"


def test_enter_key_queues_a_bind_request_and_shows_the_clouds_refusal(terminal: Terminal) -> None:
    key = kl.new_licence_key()
    pending = terminal.licence.enter_key(kc.format_licence_key(key))
    request = terminal.up("bind_request")[-1]
    assert request.body.licence_key == key
    assert request.body.device_public_key == terminal.licence.device_public_key
    assert terminal.licence.status()["bind_request"]["outcome"] == "pending"
    row = next(r for r in terminal.licence.outbox.after(0, 100) if str(r.message_id) == pending["message_id"])
    terminal.licence.outbox.settle([], [(row.seq, "licence.unknown_key")])  # the ack's rejected list
    bind = terminal.licence.status()["bind_request"]
    assert (bind["outcome"], bind["detail"]) == ("refused", "licence.unknown_key")


def test_a_key_of_another_company_is_shown_refused_with_what_to_do(terminal: Terminal) -> None:
    from agent import ctl_format

    pending = terminal.licence.enter_key(kl.new_licence_key())
    row = next(r for r in terminal.licence.outbox.after(0, 100) if str(r.message_id) == pending["message_id"])
    terminal.licence.outbox.settle([], [(row.seq, "licence.other_company")])
    status = terminal.licence.status()
    bind = status["bind_request"]
    assert (bind["outcome"], bind["detail"]) == ("refused", "licence.other_company")
    assert "Ask the company that holds it to release it" in bind["message"]
    assert "licence.other_company (This licence belongs to another company." in status["summary"]
    shown = ctl_format.licence(status)  # what `kassactl licence` prints
    assert "refused (licence.other_company)" in shown and "ask your partner for a licence of your own" in shown
    # A code this agent does not know yet is still shown, with a generic hint.
    terminal.clocks.advance(60)
    again = terminal.licence.enter_key(kl.new_licence_key())
    row = next(r for r in terminal.licence.outbox.after(0, 100) if str(r.message_id) == again["message_id"])
    terminal.licence.outbox.settle([], [(row.seq, "licence.some_future_reason")])
    assert "quoting the code" in terminal.licence.status()["bind_request"]["message"]


def test_every_refusal_of_a_bind_request_has_advice_on_the_terminal() -> None:
    """The terminal keeps only the cloud's code: each code the cloud's bind path can refuse
    with must have its own advice here (read from the cloud's source, so a new code fails)."""
    import inspect
    import re

    from agent.licence.bind_refusals import UNKNOWN, bind_refusal_advice
    from cloud_api.licences import binding, records

    bind_path = [
        binding.bind,
        binding.known_device,
        binding.refuse_returning,
        binding.refuse_other_company,
        records.canonical_key,
        records.check_move_rate,
        binding.require_signer,
    ]
    codes = {
        code
        for function in bind_path
        for code in re.findall(r'LicenceRefused\(\s*"(licence\.[a-z_]+)"', inspect.getsource(function))
    }
    assert {"licence.other_company", "licence.returning", "licence.key_unknown"} <= codes
    assert [code for code in sorted(codes) if bind_refusal_advice(code) == UNKNOWN] == []


def test_enter_key_typo_says_what_is_wrong(terminal: Terminal) -> None:
    with pytest.raises(kc.LicenceKeyError) as typo:
        terminal.licence.enter_key("7KQ2-M9XD")
    assert "licence key" in str(typo.value)
    assert terminal.up("bind_request") == []


def test_grant_after_a_bind_request_marks_it_granted(terminal: Terminal) -> None:
    terminal.licence.enter_key(kl.new_licence_key())
    terminal.push(terminal.token())
    assert terminal.licence.status()["bind_request"]["outcome"] == "granted"


def test_release_file_is_0600_and_readable(terminal: Terminal) -> None:
    terminal.push(terminal.token(epoch=4))
    result = terminal.licence.releaser.release_file()
    path = Path(result["path"])
    assert path.stat().st_mode & 0o777 == 0o600
    record = kl.read_release_file(path.read_text())
    assert (record.device_id, record.licence_id, record.epoch) == (DEVICE, "LIC-1", 4)
    claims = kl.read_release(record.receipt, identity_public_key(terminal.agent.config.paths.state_dir))
    assert claims.epoch == 4
    assert terminal.code() == "licence.released"
    assert result["qr"].count("\n") > 10
    again = terminal.licence.releaser.release_file()
    assert again["text"] == result["text"]


def test_leases_are_reported_every_renew_after_s_while_connected(terminal: Terminal) -> None:
    terminal.push(terminal.token(renew_after_s=600))
    reports = len(terminal.up("lease_report"))
    terminal.link.mqtt.connected = True
    terminal.clocks.advance(599)
    terminal.licence.housekeeping()
    assert len(terminal.up("lease_report")) == reports
    terminal.clocks.advance(2)
    terminal.licence.housekeeping()
    assert len(terminal.up("lease_report")) == reports + 1
    terminal.link.mqtt.connected = False  # offline: nothing piles up in the outbox
    terminal.clocks.advance(601)
    terminal.licence.housekeeping()
    assert len(terminal.up("lease_report")) == reports + 1
    assert db.wall_high_water(terminal.agent.store.read()) == terminal.clocks.wall_now


def test_protocol_examples_are_genuine_tokens() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey as Key

    from broker.contract.examples import examples

    by_name = {e.name: e.envelope for e in examples()}
    lease = by_name["down.state.licence"].body.doc["leases"][0]
    cloud_key = Key.from_private_bytes(bytes(range(32, 64))).public_key()
    assert kl.read_lease(lease, {"cloud-2025": cloud_key}).licence_id == "LIC-9A1B-77KD"
    device_key = Key.from_private_bytes(bytes(range(32))).public_key()
    receipt = by_name["up.reply.licence_release"].body.result["receipt"]
    assert kl.read_release(receipt, device_key).epoch == 3
    assert by_name["up.licence.release_receipt"].body.receipt == receipt
