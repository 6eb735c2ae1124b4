"""Fuzzing what terminals and the cloud read from QR codes and typed codes.

- configuration QR codes (``KASSA-PROV1:`` + a signed token): ``read_qr_text`` on any text
  refuses with a ``ProvisioningError`` saying why; signed codes with fuzzed settings go through
  the agent's real ``Provisioner.apply`` (scan -> verify -> write agent.toml -> reload) in a
  running in-process agent: applied, or refused with a reason, and the config file stays valid;
- licence release files (file or QR, device -> cloud): ``read_release_file`` gives a file or a
  ``ValueError`` naming the bad field; what it accepts the cloud's upload body accepts too, and
  its receipt verifies or is refused with a ``TokenError``;
- licence keys and pairing codes as people type them: the canonical code, or a ``CodeError``
  saying what is wrong; a canonical code reads back as itself in every spelling.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agent import wiring
from agent.config import load_config
from broker import contract as kc
from broker.contract import licence as kl
from broker.contract.codes import CodeError
from broker.contract.pairing import format_pairing_code, new_pairing_code, normalize_pairing_code
from broker.contract.provisioning import QR_PREFIX, TOKEN_KIND
from broker.contract.signing import TokenError, public_key_fingerprint, public_key_text, sign
from cloud_api.api.licence_schemas import ReleaseFileIn
from tests.fuzz.strategies import NASTY_TEXT, json_values, mutated, similar
from tests.support.inprocess import InProcessAgent
from tests.support.licence import CLOUD_KEY, CLOUD_KEY_ID

pytestmark = pytest.mark.timeout(120)

TRUSTED = {CLOUD_KEY_ID: CLOUD_KEY.public_key()}
SETTINGS = {
    "point_of_sale": "STORE-1",
    "language": "de-DE",
    "scanner": "hand",
    "rooms": ["Bar", "Terrasse"],
    "broker_host": "mqtt.example.com",
    "broker_port": 8883,
    "issued_at": "2025-03-01T09:30:00.000Z",
    "expires_at": "2999-01-01T00:00:00.000Z",
}


def qr_code(settings_: Any, key: Ed25519PrivateKey = CLOUD_KEY, key_id: str = CLOUD_KEY_ID) -> str:
    """A configuration code as the cloud makes it, for whatever settings the fuzzer drew."""
    try:
        return QR_PREFIX + sign(TOKEN_KIND, settings_, key, key_id)
    except (ValueError, TypeError, UnicodeError):  # floats, not an object: the cloud could not sign it
        return QR_PREFIX + "not.signed"


printable = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=60)
valid_settings = st.fixed_dictionaries(
    {},
    optional={
        "point_of_sale": st.from_regex(r"[^\s\x00-\x1f\x7f]{1,64}", fullmatch=True),
        "language": st.sampled_from(["en", "de", "de-AT", "fr-FR"]),
        "scanner": st.from_regex(r"[a-z0-9][a-z0-9_-]{0,31}", fullmatch=True),
        "rooms": st.lists(printable, max_size=4),
        "broker_host": st.from_regex(r"[A-Za-z0-9.:-]{1,60}", fullmatch=True),
        "broker_port": st.integers(1, 65535),
        "expires_at": st.sampled_from(["2999-01-01T00:00:00Z", "2999-01-01T00:00:00+14:00"]),
    },
)
fuzzed_settings = st.one_of(
    valid_settings,
    valid_settings,
    mutated(SETTINGS, keep=("issued_at",)),
    st.fixed_dictionaries({key: similar(value) for key, value in SETTINGS.items() if key != "issued_at"}),
)


scanned_texts = st.one_of(
    st.text(max_size=60),
    st.sampled_from(NASTY_TEXT),
    st.builds(
        lambda tail: QR_PREFIX + tail, st.text(max_size=80) | st.sampled_from(["", " ", "a.b", "AAAA.AAAA", "x" * 9000])
    ),
    st.builds(lambda code, cut: code[:cut], st.just(qr_code(SETTINGS)), st.integers(0, 400)),
    st.builds(
        lambda code, at: code[:at] + "A" + code[at + 1 :], st.just(qr_code(SETTINGS)), st.integers(len(QR_PREFIX), 300)
    ),
    st.just(qr_code(SETTINGS, Ed25519PrivateKey.generate())),  # signed by a key the terminal does not trust
    valid_settings.map(lambda settings_: qr_code({**settings_, "issued_at": SETTINGS["issued_at"]})),
)


@settings(max_examples=60, deadline=2000)
@given(scanned=scanned_texts)
def test_any_scanned_text_is_a_configuration_or_refused_with_a_reason(scanned: str) -> None:
    try:
        settings_ = kc.read_qr_text(scanned, TRUSTED)
    except kc.ProvisioningError as exc:
        assert str(exc).strip()
        event("refused")
        return
    event("read")
    assert kc.read_qr_text(kc.make_qr_text(settings_, CLOUD_KEY, CLOUD_KEY_ID), TRUSTED) == settings_


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(settings_=fuzzed_settings)
def test_signed_configuration_codes_are_applied_or_refused_with_a_reason(
    inprocess_agent: InProcessAgent, settings_: Any
) -> None:
    if isinstance(settings_, dict):  # newer than the last code applied, or it is refused as old
        settings_["issued_at"] = datetime.now(UTC).isoformat(timespec="microseconds")
    terminal = inprocess_agent  # conftest.py: the agent the cloud key is pinned in
    result = terminal.agent.component(wiring.PROVISIONING).apply(qr_code(settings_))
    event("applied" if result["ok"] else "refused")
    if result["ok"]:
        assert set(result["changed"]) <= {
            "site.point_of_sale",
            "site.language",
            "site.scanner",
            "site.rooms",
            "mqtt.host",
            "mqtt.port",
        }
    elif "invalid settings" in result["reason"] and isinstance(settings_, dict):
        assert any(f"{key}:" in result["reason"] or f"{key}." in result["reason"] for key in settings_), result[
            "reason"
        ]  # names it
    else:
        assert result["reason"].strip()
    assert load_config(terminal.agent.config_path, environ={}).device_id  # the file is valid whatever the code said
    assert terminal.agent.state == "running"


# ------------------------------------------------------------------------ licence release files
DEVICE_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
DEVICE_ID, LICENCE_ID = "till-0042", "LIC-7F3K-22QX"


def receipt(epoch: int = 3, licence_id: str = LICENCE_ID) -> str:
    claims = kl.ReleaseClaims(
        licence_id=licence_id,
        device_id=DEVICE_ID,
        device_key=public_key_fingerprint(DEVICE_KEY.public_key()),
        epoch=epoch,
        released_at=int(time.time()),
    )
    return kl.sign_release(claims, DEVICE_KEY)


RELEASE_FILE = json.loads(kl.release_file_text(DEVICE_ID, LICENCE_ID, 3, receipt()))


def release_text(device_id: str, licence_id: str, epoch: int, forged: bool) -> str:
    token = receipt(epoch if epoch >= 1 else 1, licence_id if licence_id.isascii() else LICENCE_ID)
    return json.dumps(
        {
            "format": kl.RELEASE_FILE_FORMAT,
            "device_id": device_id,
            "licence_id": licence_id,
            "epoch": epoch,
            "receipt": token[:-2] + "AA" if forged else token,
        }
    )


valid_release_texts = st.builds(
    release_text,
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,30}", fullmatch=True) | st.just(DEVICE_ID),
    st.from_regex(r"[^\s\x00-\x1f\x7f]{1,64}", fullmatch=True) | st.just(LICENCE_ID),
    st.integers(1, 2**40) | st.sampled_from([1, 3, 2**31 - 1, 2**31, 0]),
    st.booleans(),
)
release_texts = st.one_of(
    valid_release_texts,
    valid_release_texts,
    mutated(RELEASE_FILE).map(json.dumps),
    st.text(max_size=80),
    st.binary(max_size=80),
    st.sampled_from(["", "{}", "null", "[" * 5000, '{"epoch": ' + "9" * 5000 + "}"]),
    json_values.map(json.dumps),
)


@settings(max_examples=50, deadline=2000)
@given(text=release_texts)
def test_release_files_are_read_or_refused_naming_the_field(text: str | bytes) -> None:
    try:
        record = kl.read_release_file(text)
    except ValueError as exc:
        assert str(exc).startswith("not a kassa licence release file: ") and len(str(exc)) > 35
        event("refused")
        return
    event("read")
    if record.epoch < 2**31:  # the upload takes what a device writes (epochs are small)
        uploaded = ReleaseFileIn.model_validate_json(text)
        assert (uploaded.device_id, uploaded.licence_id, uploaded.epoch, uploaded.receipt) == (
            record.device_id,
            record.licence_id,
            record.epoch,
            record.receipt,
        )
    try:
        claims = kl.read_release(record.receipt, public_key_text(DEVICE_KEY.public_key()))
    except TokenError as exc:
        assert str(exc).strip()
        return
    assert claims.device_id == DEVICE_ID


@settings(max_examples=40, deadline=2000)
@given(text=release_texts)
def test_the_clouds_upload_body_accepts_or_refuses_with_errors(text: str | bytes) -> None:
    try:
        ReleaseFileIn.model_validate_json(text)
    except ValidationError as exc:
        assert exc.errors() and all(error["msg"] for error in exc.errors())


# ------------------------------------------------------------------------ typed codes
LICENCE_KEY = kl.new_licence_key()
PAIRING_CODE = new_pairing_code()


def spellings(code: str, group: int) -> st.SearchStrategy[str]:
    """How people type a code: grouped, lower case, spaces, O for 0, I or L for 1, or with a typo."""
    grouped = "-".join(code[i : i + group] for i in range(0, len(code), group))
    return st.one_of(
        st.sampled_from(
            [code, grouped, grouped.lower(), " ".join(grouped.split("-")), code.replace("0", "O").replace("1", "l")]
        ),
        st.builds(
            lambda at, char: code[:at] + char + code[at + 1 :],
            st.integers(0, len(code) - 1),
            st.sampled_from("0123456789ABUZ*é"),
        ),
        st.builds(
            lambda at: code[:at] + code[at + 1 : at + 2] + code[at] + code[at + 2 :], st.integers(0, len(code) - 2)
        ),
        st.text(max_size=40),
        st.sampled_from(NASTY_TEXT),
        json_values,
    )


@settings(max_examples=60, deadline=2000)
@given(typed=spellings(LICENCE_KEY, 4), pairing=spellings(PAIRING_CODE, 3))
def test_typed_codes_are_canonical_or_refused_saying_what_is_wrong(typed: Any, pairing: Any) -> None:
    for read, value, canonical, formatted in (
        (kl.normalize_licence_key, typed, LICENCE_KEY, kl.format_licence_key),
        (normalize_pairing_code, pairing, PAIRING_CODE, format_pairing_code),
    ):
        try:
            code = read(value)
        except CodeError as exc:
            assert str(exc).strip()
            continue
        assert read(formatted(code)) == code == read(code.lower())
        # codes of different lengths are compared position by position as far as both go
        assert (
            code == canonical
            or sum(a != b for a, b in zip(code, canonical, strict=False)) > 1
            or len(code) != len(canonical)
        )


def test_codes_expire_and_keys_must_be_pinned() -> None:
    past = {**SETTINGS, "expires_at": (datetime.now(UTC) - timedelta(seconds=1)).isoformat()}
    with pytest.raises(kc.ProvisioningError, match="expired"):
        kc.read_qr_text(qr_code(past), TRUSTED)
    with pytest.raises(kc.ProvisioningError, match="not trusted"):
        kc.read_qr_text(qr_code(SETTINGS, key_id="cloud-9"), TRUSTED)
