"""Fuzzing every MQTT payload parser, in both directions.

- the contract's ``parse_message`` on mutations of every valid example (broker/contract/examples.py)
  and on damaged bytes: a valid ``Parsed`` (which encodes again to the same envelope) or a
  ``Rejection`` with a reason and a detail, never another exception, never slowly;
- the cloud ingest: ``fastparse.parse`` / ``parse_batch`` (the worker's parsers), then
  ``apply_batch`` on a SQLite database: every message the cloud could parse is acked or
  refused with a reason, nothing raises;
- the agent: what the cloud pushes (acks, the cashiers / config / licence state documents,
  commands) through the link's real dispatch (``CloudLink._on_message``) into a running
  in-process agent: refused with a counted reason or applied, no unexpected exception logged,
  and a valid document still applies afterwards; plus the parsers behind the documents
  (roster and PIN hashes, signed lease tokens, the receipt template of the config document).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from agent.cashiers.roster import parse_roster
from agent.licence.lease import LeaseRefused, accept_token
from agent.sales.receipts import Template, sale_receipt
from broker import contract as kc
from broker.contract import licence as kl
from broker.contract.examples import DEVICE_ID as DEVICE
from broker.contract.examples import examples
from broker.contract.roster import PinHashError, hash_pin, verify_pin
from broker.contract.signing import load_public_key, public_key_fingerprint, public_key_text, sign
from cloud_api.db import make_engine
from cloud_api.ingest import apply_batch
from cloud_api.ingest.fastparse import parse, parse_batch
from cloud_api.ingest.up import Up
from cloud_api.schema import upgrade as upgrade_schema
from drivers.printers.profile import load_profile
from drivers.receipt.escpos import render_escpos
from tests.fuzz.strategies import damaged, dumps, json_values, mutated, paths, put, similar_values
from tests.support.inprocess import InProcessAgent
from tests.support.licence import CLOUD_KEY, CLOUD_KEY_ID, identity_public_key

pytestmark = pytest.mark.timeout(120)

EXAMPLES = {example.name: example.envelope for example in examples()}
RAW = {name: json.loads(kc.encode(envelope)) for name, envelope in EXAMPLES.items()}
UP = sorted(name for name in EXAMPLES if not name.startswith("down."))
DOWN = sorted(name for name in EXAMPLES if name.startswith("down."))
FAST = settings(max_examples=50, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


def assert_parsed_or_rejected(topic: str, result: Any) -> None:
    """A rejection names its reason and says what was wrong; a parsed message is whole."""
    if isinstance(result, kc.Rejection):
        assert isinstance(result.reason, kc.RejectReason)
        assert result.detail.strip(), result
        return
    if type(result) is Up:  # the ingest's fast path: a sale proved valid without building models
        assert result.device_id == kc.parse_topic(topic).device_id and result.wire
        return
    assert isinstance(result, kc.Parsed), result
    envelope = result.envelope
    assert envelope.topic == topic
    again = kc.parse_message(topic, kc.encode(envelope))  # what was accepted encodes as valid again
    assert isinstance(again, kc.Parsed) and again.envelope == envelope, again


@st.composite
def message(draw: st.DrawFn, names: list[str]) -> tuple[str, str, bytes]:
    """A valid example, mutated as JSON (often sparing the envelope's type, so the damage
    reaches the body's schema), then perhaps damaged as bytes."""
    name = draw(st.sampled_from(names))
    keep = draw(st.sampled_from([(), ("v", "type", "device_id"), ("v", "type", "device_id", "id", "created_at")]))
    document = draw(mutated(RAW[name], keep=keep))
    data = dumps(document, ascii_only=draw(st.booleans()))
    return name, EXAMPLES[name].topic, draw(damaged(data))


def _at(document: Any, path: tuple) -> Any:
    for step in path:
        document = document[step]
    return document


# ------------------------------------------------------------------------ the contract's parser
@FAST
@given(message(UP + DOWN))
def test_mutated_messages_parse_whole_or_are_rejected_with_a_reason(sent: tuple[str, str, bytes]) -> None:
    _, topic, data = sent
    assert_parsed_or_rejected(topic, kc.parse_message(topic, data))


def test_every_field_of_every_example_takes_every_nasty_value_of_its_kind() -> None:
    """Not random, so never missed: each key of each example set to each nasty value of its
    kind (a timestamp a day before year 1 in UTC, a receipt number past 2**63, ...)."""
    tried = 0
    for name, raw in RAW.items():
        topic = EXAMPLES[name].topic
        for path in paths(raw):
            for value in similar_values(_at(raw, path), short=True):
                data = dumps(put(raw, path, value))
                assert_parsed_or_rejected(topic, kc.parse_message(topic, data))
                if name in UP:
                    assert_parsed_or_rejected(topic, parse(topic, data))
                tried += 1
    assert tried > 3000


segments = st.sampled_from(
    [
        "kassa",
        "v1",
        "v2",
        "v01",
        "dev",
        DEVICE,
        "till+7",
        "",
        "#",
        "up",
        "down",
        "state",
        "cashiers",
        "sale",
        "batch",
        "cmd",
        "ack",
        "status",
        "é",
        "x" * 70,
    ]
)
topics = st.lists(segments, min_size=1, max_size=8).map("/".join) | st.text(max_size=300)


@FAST
@given(topic=topics, data=st.binary(max_size=300) | st.sampled_from([kc.encode(e) for e in EXAMPLES.values()]))
def test_any_topic_and_bytes_are_parsed_or_rejected_by_every_receiver(topic: str, data: bytes) -> None:
    for parser in (kc.parse_message, parse):
        assert_parsed_or_rejected(topic, parser(topic, data))
    batch = parse_batch(topic, data)
    if isinstance(batch, kc.Rejection):
        assert batch.detail.strip()
    else:
        for item in batch:
            assert isinstance(item, (kc.Parsed, kc.Rejection, Up)) and (
                not isinstance(item, kc.Rejection) or item.detail
            )


# ------------------------------------------------------------------------ the cloud ingest
@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('cloud') / 'cloud.db'}")
    upgrade_schema(engine)
    yield engine
    engine.dispose()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sent=message(UP), fresh_id=st.booleans())
def test_uploads_are_applied_or_refused_with_a_reason(
    engine: Engine, sent: tuple[str, str, bytes], fresh_id: bool
) -> None:
    name, topic, data = sent
    if fresh_id:  # a new message id: applied as new, not answered as a duplicate of an earlier one
        data = data.replace(RAW[name]["id"].encode(), str(kc.uuid7()).encode())
    item = parse(topic, data)
    assert_parsed_or_rejected(topic, item)
    with Session(engine) as session, session.begin():
        plan = apply_batch(session, [item])
        acks = plan.envelopes()  # the down/acks it would publish are valid messages too
    for ack in acks:
        assert isinstance(kc.parse_message(ack.topic, kc.encode(ack)), kc.Parsed)
    entry = plan.devices.get(DEVICE)
    if isinstance(item, kc.Rejection):
        # Refused now, refused without an id to answer by, or an id refused before (the ledger
        # keeps refused messages too) answered with its first refusal again.
        answered_again = plan.duplicates == 1 and entry is not None and item.message_id in entry.rejected
        assert plan.rejected + plan.invalid == 1 or answered_again, plan
    elif type(item) is Up or item.type.is_up:
        message_id = item.id if type(item) is Up else item.envelope.id
        assert entry is not None and (message_id in entry.acked or message_id in entry.rejected), plan
    for refusal in entry.rejected.values() if entry else ():
        assert refusal.reason and refusal.detail.strip()


def test_numbers_at_the_database_limit_are_applied_or_refused_with_a_reason(engine: Engine) -> None:
    """Every integer of every upload at 2**63 - 1 and 2**63 (a BIGINT column holds the first):
    what the contract accepts is stored or refused with a reason, never a failed batch."""
    for name in UP:
        raw = RAW[name]
        for path in paths(raw):
            if type(_at(raw, path)) is not int:
                continue
            for value in (2**63 - 1, 2**63):
                document = put(raw, path, value)
                document["id"] = str(kc.uuid7())
                item = parse(EXAMPLES[name].topic, dumps(document))
                if isinstance(item, kc.Rejection):
                    continue
                with Session(engine) as session, session.begin():
                    entry = apply_batch(session, [item]).devices[DEVICE]
                message_id = item.id if type(item) is Up else item.envelope.id
                assert message_id in entry.acked or entry.rejected[message_id].detail, (name, path, value)


@settings(max_examples=40, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(
        message(UP).map(lambda sent: sent[2].replace(b"\n", b" "))
        | st.binary(max_size=60).map(lambda raw: raw.replace(b"\n", b"")),
        min_size=1,
        max_size=12,
    ),
    trailing=st.booleans(),
    other_device=st.booleans(),
)
def test_batches_split_into_their_lines_each_parsed_alone(
    lines: list[bytes], trailing: bool, other_device: bool
) -> None:
    topic = kc.batch_topic("till-0043" if other_device else DEVICE)
    payload = b"\n".join(lines) + (b"\n" if trailing else b"")
    result = parse_batch(topic, payload)
    expected = len(lines) - (1 if not trailing and lines[-1] == b"" else 0)  # a trailing newline is tolerated
    if isinstance(result, kc.Rejection):
        assert result.reason is kc.RejectReason.SCHEMA and result.detail and expected == 0, result
        return
    assert len(result) == expected
    for item in result:
        if isinstance(item, kc.Rejection):
            assert item.detail.strip()
        elif type(item) is not Up:
            assert item.envelope.device_id == item.topic.device_id  # a line never speaks for another device


# ------------------------------------------------------------------------ the agent's dispatch
class Tracebacks(logging.Handler):
    """Collects log records that carry an exception: an unexpected one, somewhere in the agent."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


@pytest.fixture(scope="module")
def pushed(inprocess_agent: InProcessAgent) -> Iterator[tuple[InProcessAgent, Tracebacks]]:
    """The shared in-process agent (conftest.py), with the exceptions it logs collected."""
    catcher = Tracebacks()
    logging.getLogger("agent").addHandler(catcher)
    try:
        yield inprocess_agent, catcher
    finally:
        logging.getLogger("agent").removeHandler(catcher)


def signed_lease(claims: Any) -> str:
    """A lease signed by the agent's pinned cloud key (claims as the fuzzer made them)."""
    try:
        return sign(kl.LEASE_KIND, claims, CLOUD_KEY, CLOUD_KEY_ID)
    except (ValueError, TypeError, UnicodeError):  # floats, a non-object: the cloud could not sign it
        return "eyJ9.AAAA"


NOW = int(datetime.now(UTC).timestamp())  # fixed for the run: hypothesis replays must draw alike
VERSION, MESSAGE_ID = 987654321, "01a2044f-0000-7000-8000-00000000abcd"  # filled in after drawing


def lease_claims(device_key: str) -> dict[str, Any]:
    return {
        "licence_id": "LIC-1",
        "company_id": 1,
        "device_id": DEVICE,
        "device_key": device_key,
        "epoch": 1,
        "entitlements": {"tills": 1},
        "issued_at": NOW,
        "expires_at": NOW + 86400,
        "renew_after_s": 3600,
    }


@st.composite
def pushed_message(draw: st.DrawFn, device_key: str) -> tuple[str, bytes]:
    """A down example, mutated; a state document gets a placeholder version and a command a
    placeholder id, both replaced before sending (newer than applied / never seen)."""
    name = draw(st.sampled_from(DOWN))
    raw = json.loads(json.dumps(RAW[name]))
    raw["id"] = MESSAGE_ID
    if raw["type"] == "down.state":
        raw["body"]["version"] = VERSION
        if raw["body"]["domain"] == "licence" and draw(st.booleans()):
            claims = draw(st.lists(mutated(lease_claims(device_key)), max_size=3))
            raw["body"]["doc"]["leases"] = [signed_lease(c) for c in claims] + [signed_lease(lease_claims(device_key))]
    document = draw(mutated(raw, keep=("v", "type", "device_id", "id", "created_at")) | st.just(raw))
    return EXAMPLES[name].topic, draw(damaged(dumps(document)))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_pushed_messages_are_applied_or_refused_by_a_running_agent(
    pushed: tuple[InProcessAgent, Tracebacks], data: st.DataObject
) -> None:
    agent, catcher = pushed
    catcher.records.clear()
    device_key = public_key_fingerprint(identity_public_key(agent.config.paths.state_dir))
    topic, payload = data.draw(pushed_message(device_key))
    version = max(agent.cloud.inbound.applied_versions().values(), default=0) + 1
    payload = payload.replace(b"%d" % VERSION, b"%d" % version).replace(MESSAGE_ID.encode(), str(kc.uuid7()).encode())
    agent.call(lambda: agent.cloud._on_message(topic, payload))
    assert not catcher.records, [f"{r.name}: {r.getMessage()}" for r in catcher.records]
    reasons = set(agent.cloud.inbound.rejections)
    assert reasons <= {reason.value for reason in kc.RejectReason} | {"state_refused"}, reasons


def test_every_command_with_arguments_at_the_limits_is_answered(pushed: tuple[InProcessAgent, Tracebacks]) -> None:
    """Not random: each command the agent knows, with its arguments at and past their limits."""
    agent, catcher = pushed
    catcher.records.clear()
    before = agent.cloud.outbox.stats().depth
    sent = 0
    for name in [*(c.value for c in kc.CommandName), "no.such_command"]:
        for value in (None, 0, -1, 1, 3, 2**31, 2**63 - 1, 2**63, 10**30, "3", 3.5, [], {"a": 1}):
            for args in ({"licence_id": "LIC-1", "epoch": value}, {"licence_id": value, "epoch": 1}, {"x": value}):
                command = kc.down_message(kc.Command(name=name, args=args), device_id=DEVICE)
                agent.call(lambda command=command: agent.cloud._on_message(command.topic, kc.encode(command)))
                sent += 1
    assert not catcher.records, [f"{r.name}: {r.getMessage()}: {r.exc_info[1]!r}" for r in catcher.records][:3]
    assert agent.cloud.outbox.stats().depth >= before + sent  # every command got its reply queued


def test_a_valid_document_still_applies_after_the_fuzzing(pushed: tuple[InProcessAgent, Tracebacks]) -> None:
    agent, catcher = pushed
    version = max(agent.cloud.inbound.applied_versions().values(), default=0) + 1
    doc = kc.down_message(
        kc.StateDoc(
            domain=kc.StateDomain.CONFIG,
            version=version,
            doc={"receipt_footer": "ok"},
            issued_at=datetime.now(UTC),
        ),
        device_id=DEVICE,
    )
    agent.call(lambda: agent.cloud._on_message(doc.topic, kc.encode(doc)))
    assert agent.cloud.inbound.applied_doc("config") == (version, {"receipt_footer": "ok"})
    assert agent.call(lambda: agent.agent.state) == "running" and not catcher.records


# ------------------------------------------------------------------------ the documents' parsers
CHEAP_HASH = hash_pin("4711", (10, 1, 1))
pin_hashes = st.one_of(
    st.just(CHEAP_HASH),
    st.none(),
    json_values,
    st.builds(
        "scrypt${}${}${}${}${}".format,
        st.sampled_from([1, 9, 10, 21, 99]),
        st.sampled_from([0, 1, 16, 17]),
        st.sampled_from([0, 1, 8, 9]),
        st.sampled_from(["", "A", "AA", "AAA", "AAAA", "c2FsdA", "_-_-"]),
        st.sampled_from(["A", "AAAAA", CHEAP_HASH.rsplit("$", 1)[1], "x" * 150]),
    ),
)


@settings(max_examples=40, deadline=2000)
@given(
    doc=mutated(RAW["down.state.cashiers"]["body"]["doc"]),
    pin_hash=pin_hashes,
    pin=st.sampled_from(["4711", "0000", "", "٤٧١١", "4711\n"]),
)
def test_rosters_are_accepted_or_refused_and_accepted_pin_hashes_verify_or_say_why(
    doc: Any, pin_hash: Any, pin: str
) -> None:
    if (
        isinstance(doc, dict)
        and isinstance(doc.get("cashiers"), list)
        and doc["cashiers"]
        and isinstance(doc["cashiers"][0], dict)
    ):
        doc["cashiers"][0]["pin_hash"] = pin_hash
    try:
        roster = parse_roster(doc)
    except ValueError as exc:
        assert str(exc).startswith("cashiers roster refused") and ":" in str(exc)
        return
    for cashier in roster.cashiers:
        if cashier.pin_hash is not None:
            try:
                assert verify_pin(pin, cashier.pin_hash) in (True, False)
            except PinHashError as exc:
                assert str(exc)


@settings(max_examples=40, deadline=2000)
@given(claims=mutated(lease_claims("0" * 64)) | json_values, forged=st.booleans())
def test_signed_leases_are_accepted_or_refused_with_a_code(claims: Any, forged: bool) -> None:
    token = signed_lease(claims)
    if forged:
        token = token[:-2] + ("AA" if not token.endswith("AA") else "BA")
    trusted = {CLOUD_KEY_ID: load_public_key(public_key_text(CLOUD_KEY.public_key()))}
    try:
        accepted = accept_token(
            token,
            device_id=DEVICE,
            device_key="0" * 64,
            trusted_keys=trusted,
            highest_epoch=0,
            now_wall=datetime.now(UTC).timestamp(),
        )
    except LeaseRefused as exc:
        assert exc.code.value.startswith("licence.") and str(exc)
        return
    assert isinstance(accepted, kl.LeaseClaims) and not forged


SALE_BODY = RAW["up.sale"]["body"]


@settings(max_examples=40, deadline=2000)
@given(
    doc=mutated(RAW["down.state.config"]["body"]["doc"])
    | st.dictionaries(st.sampled_from(["receipt_header", "receipt_footer", "receipt_logo_text"]), json_values)
)
def test_pushed_config_documents_give_receipts_that_render(doc: Any) -> None:
    template = Template.from_config(doc if isinstance(doc, dict) else None)
    receipt = sale_receipt(SALE_BODY, created_at=1_740_000_000.0, device_id=DEVICE, template=template)
    assert render_escpos(receipt, load_profile("default")).startswith(b"\x1b@")


def test_fuzzed_examples_cover_every_inbound_type() -> None:
    assert {EXAMPLES[name].type for name in DOWN} == {t for t in kc.MessageType if t.is_down}
    assert {EXAMPLES[name].type for name in UP} == {t for t in kc.MessageType if not t.is_down}
