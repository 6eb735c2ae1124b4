"""DLE EOT parsing: every status byte pattern maps to the right normalised status."""

from __future__ import annotations

import itertools

import pytest

from drivers import dle_eot
from drivers.status import DeviceStatus, PrinterStatus, Severity, most_severe

FIXED = 0x12  # bits 1 and 4 of every status answer


def expected_conditions(printer: int, offline: int, paper: int) -> set[DeviceStatus]:
    """An independent statement of the ESC/POS status bits, written from the command reference."""
    found = set()
    cover_open = bool(offline & 0b0000_0100)
    paper_end = bool(offline & 0b0010_0000) or bool(paper & 0b0110_0000)
    near_end = bool(paper & 0b0000_1100)
    if cover_open:
        found.add(DeviceStatus.COVER_OPEN)
    if paper_end:
        found.add(DeviceStatus.PAPER_OUT)
    elif near_end:
        found.add(DeviceStatus.PAPER_NEAR_END)
    if offline & 0b0100_0000 or printer & 0b0010_0000:
        found.add(DeviceStatus.OFFLINE)
    if printer & 0b0000_1000 and not (cover_open or paper_end):
        found.add(DeviceStatus.OFFLINE)
    return found


def variable_bits(mask: int) -> list[int]:
    bits = [1 << i for i in range(8) if mask & (1 << i)]
    return [FIXED | sum(combo) for n in range(len(bits) + 1) for combo in itertools.combinations(bits, n)]


PRINTER_BYTES = variable_bits(0b0110_1100)  # drawer pin, offline, waiting for recovery, feed button
OFFLINE_BYTES = variable_bits(0b0110_1100)  # cover, feeding, paper-end stop, error
PAPER_BYTES = variable_bits(0b0110_1100)  # near-end sensor (2 bits), end sensor (2 bits)


def test_every_valid_answer_combination_maps_to_the_documented_status():
    checked = 0
    for printer, offline, paper in itertools.product(PRINTER_BYTES, OFFLINE_BYTES, PAPER_BYTES):
        status = dle_eot.interpret(printer, offline, paper, error_cause=FIXED)
        expected = expected_conditions(printer, offline, paper)
        assert status.conditions == frozenset(expected), (hex(printer), hex(offline), hex(paper))
        assert status.status is most_severe(expected)
        assert status.can_print == (
            not expected & {DeviceStatus.COVER_OPEN, DeviceStatus.PAPER_OUT, DeviceStatus.OFFLINE}
        )
        checked += 1
    assert checked == 16**3


@pytest.mark.parametrize(
    "printer, offline, paper, expected",
    [
        (0x12, 0x12, 0x12, DeviceStatus.READY),
        (0x1A, 0x16, 0x12, DeviceStatus.COVER_OPEN),  # cover open: offline bit set too, the cause wins
        (0x1A, 0x32, 0x72, DeviceStatus.PAPER_OUT),
        (0x12, 0x12, 0x1E, DeviceStatus.PAPER_NEAR_END),
        (0x1A, 0x52, 0x12, DeviceStatus.OFFLINE),  # error flagged
        (0x1A, 0x12, 0x12, DeviceStatus.OFFLINE),  # offline with no stated cause
        (0x1A, 0x36, 0x72, DeviceStatus.COVER_OPEN),  # cover open and paper out: cover first
    ],
)
def test_named_patterns(printer, offline, paper, expected):
    assert dle_eot.interpret(printer, offline, paper).status is expected


@pytest.mark.parametrize(
    "open_level, pin_high, expected",
    [
        ("high", True, DeviceStatus.DRAWER_OPEN),
        ("high", False, DeviceStatus.DRAWER_CLOSED),
        ("low", True, DeviceStatus.DRAWER_CLOSED),
        ("low", False, DeviceStatus.DRAWER_OPEN),
    ],
)
def test_drawer_sensor_bit_and_configured_open_level(open_level, pin_high, expected):
    printer = FIXED | (0x04 if pin_high else 0)
    status = dle_eot.interpret(printer, FIXED, FIXED, drawer_open_level=open_level)
    assert status.drawer is expected
    assert status.status is DeviceStatus.READY  # an open drawer never stops printing


@pytest.mark.parametrize("missing", ["printer", "offline_cause", "paper"])
def test_no_answer_to_any_required_query_is_unknown_never_ready(missing):
    answers = {"printer": FIXED, "offline_cause": FIXED, "paper": FIXED, missing: None}
    status = dle_eot.interpret(**answers)
    assert status.status is DeviceStatus.UNKNOWN
    assert not status.can_print
    assert status.drawer is DeviceStatus.UNKNOWN


@pytest.mark.parametrize("garbage", [0x00, 0xFF, 0x41, 0x10, 0x92, 0x13])
def test_bytes_without_the_fixed_bits_are_not_status_answers(garbage):
    assert not dle_eot.is_status_byte(garbage)
    assert dle_eot.interpret(garbage, FIXED, FIXED).status is DeviceStatus.UNKNOWN


def test_error_cause_details_are_reported():
    status = dle_eot.interpret(0x1A, 0x52, FIXED, error_cause=FIXED | 0x08)
    assert status.status is DeviceStatus.OFFLINE
    assert "autocutter error" in status.details


class ScriptedChannel:
    """A link that answers DLE EOT queries from a table (None = silence)."""

    def __init__(self, answers: dict[int, int | None], stale: bytes = b"") -> None:
        self.answers, self.pending, self.queries = answers, bytearray(stale), []

    def write(self, data: bytes) -> None:
        assert data[:2] == b"\x10\x04"
        self.queries.append(data[2])
        answer = self.answers.get(data[2])
        if answer is not None:
            self.pending.append(answer)

    def read_byte(self, timeout: float) -> int | None:
        return self.pending.pop(0) if self.pending else None

    def discard_input(self) -> None:
        self.pending.clear()


def test_read_status_queries_1_2_4_and_3_only_when_an_error_is_flagged():
    channel = ScriptedChannel({1: 0x12, 2: 0x12, 4: 0x12})
    assert dle_eot.read_status(channel, 0.01).status is DeviceStatus.READY
    assert channel.queries == [1, 2, 4]
    channel = ScriptedChannel({1: 0x1A, 2: 0x52, 3: 0x1A, 4: 0x12})
    status = dle_eot.read_status(channel, 0.01)
    assert channel.queries == [1, 2, 3, 4]
    assert status.status is DeviceStatus.OFFLINE and "autocutter error" in status.details


def test_a_silent_printer_is_unknown():
    channel = ScriptedChannel({})
    status = dle_eot.read_status(channel, 0.01)
    assert status.status is DeviceStatus.UNKNOWN
    assert channel.queries == [1]  # gives up after the first unanswered query


def test_stale_bytes_are_discarded_before_querying():
    channel = ScriptedChannel({1: 0x12, 2: 0x12, 4: 0x12}, stale=b"\x72\x72")
    assert dle_eot.read_status(channel, 0.01).status is DeviceStatus.READY


def test_severity_order_and_printability():
    assert DeviceStatus.READY.severity is Severity.OK
    assert DeviceStatus.DRAWER_OPEN.severity is Severity.INFO
    assert DeviceStatus.PAPER_NEAR_END.severity is Severity.WARNING
    for blocking in (DeviceStatus.PAPER_OUT, DeviceStatus.COVER_OPEN, DeviceStatus.OFFLINE, DeviceStatus.UNKNOWN):
        assert blocking.severity is Severity.ERROR and blocking.blocks_printing
    assert most_severe([]) is DeviceStatus.READY
    assert PrinterStatus.unknown("x").as_dict()["severity"] == "error"
