"""Typed Ed25519 signed tokens."""

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from broker.contract.signing import (
    BadSignatureError,
    MalformedTokenError,
    TokenError,
    UnknownKeyError,
    WrongKindError,
    canonical_json,
    load_public_key,
    public_key_fingerprint,
    public_key_text,
    sign,
    verify,
)

CLOUD_KEY = Ed25519PrivateKey.generate()
TRUSTED = {"cloud-2025": CLOUD_KEY.public_key()}
LEASE = {"licence_id": "LIC-1", "device_id": "till-7", "epoch": 3, "entitlements": ["sales"]}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_round_trip_returns_the_payload():
    token = sign("licence.lease", LEASE, CLOUD_KEY, "cloud-2025")
    assert verify(token, "licence.lease", TRUSTED) == LEASE


def test_token_body_is_canonical_json_naming_key_and_kind():
    token = sign("licence.lease", {"b": 1, "a": "ü"}, CLOUD_KEY, "cloud-2025")
    body = unb64(token.split(".")[0])
    assert body == canonical_json({"kid": "cloud-2025", "kind": "licence.lease", "payload": {"a": "ü", "b": 1}})
    assert body == '{"kid":"cloud-2025","kind":"licence.lease","payload":{"a":"ü","b":1}}'.encode()


def test_signature_covers_the_kind_prefix():
    token = sign("licence.lease", LEASE, CLOUD_KEY, "cloud-2025")
    body_part, sig_part = token.split(".")
    expected = b"kassa:licence.lease\n" + unb64(body_part)
    CLOUD_KEY.public_key().verify(unb64(sig_part), expected)  # raises if not


def test_wrong_kind_is_refused():
    receipt = sign("licence.release_receipt", LEASE, CLOUD_KEY, "cloud-2025")
    with pytest.raises(WrongKindError):
        verify(receipt, "licence.lease", TRUSTED)


def test_relabelled_kind_fails_the_signature():
    # Rewrite the body to claim another kind, keep the old signature.
    token = sign("licence.release_receipt", LEASE, CLOUD_KEY, "cloud-2025")
    body_part, sig_part = token.split(".")
    body = json.loads(unb64(body_part))
    body["kind"] = "licence.lease"
    forged = f"{b64(canonical_json(body))}.{sig_part}"
    with pytest.raises(BadSignatureError):
        verify(forged, "licence.lease", TRUSTED)


def test_tampered_payload_is_refused():
    token = sign("licence.lease", LEASE, CLOUD_KEY, "cloud-2025")
    body_part, sig_part = token.split(".")
    body = json.loads(unb64(body_part))
    body["payload"]["epoch"] = 4
    with pytest.raises(BadSignatureError):
        verify(f"{b64(canonical_json(body))}.{sig_part}", "licence.lease", TRUSTED)


def test_signature_by_another_key_under_a_trusted_id_is_refused():
    impostor = sign("licence.lease", LEASE, Ed25519PrivateKey.generate(), "cloud-2025")
    with pytest.raises(BadSignatureError):
        verify(impostor, "licence.lease", TRUSTED)


def test_unknown_key_id_is_refused():
    token = sign("licence.lease", LEASE, CLOUD_KEY, "cloud-1999")
    with pytest.raises(UnknownKeyError):
        verify(token, "licence.lease", TRUSTED)


def test_key_rotation():
    old_key, new_key = CLOUD_KEY, Ed25519PrivateKey.generate()
    old_token = sign("licence.lease", LEASE, old_key, "cloud-2025")
    new_token = sign("licence.lease", LEASE, new_key, "cloud-2026")
    both = {"cloud-2025": old_key.public_key(), "cloud-2026": new_key.public_key()}
    assert verify(old_token, "licence.lease", both) == LEASE
    assert verify(new_token, "licence.lease", both) == LEASE
    after_rotation = {"cloud-2026": new_key.public_key()}
    assert verify(new_token, "licence.lease", after_rotation) == LEASE
    with pytest.raises(UnknownKeyError):
        verify(old_token, "licence.lease", after_rotation)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b.c",
        "!!!.abc",
        "abc.",
        ".abc",
        "YQ.YQ",
        "x" * 9000,
        None,
        42,
        # valid base64 bodies that are not token bodies
        *(
            f"{b64(body)}.{b64(bytes(64))}"
            for body in (
                b"[1,2]",
                b'{"kid":"k","kind":"x"}',
                b'{"kid":1,"kind":"x","payload":{}}',
                b"\xff",
            )
        ),
    ],
)
def test_malformed_tokens_are_refused(token):
    with pytest.raises(MalformedTokenError):
        verify(token, "licence.lease", TRUSTED)


def test_non_canonical_base64_is_refused():
    token = sign("licence.lease", LEASE, CLOUD_KEY, "cloud-2025")
    body_part, sig_part = token.split(".")
    # 64 bytes -> 86 characters whose last one carries 4 unused bits; flip one of them.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet[alphabet.index(sig_part[-1]) ^ 1]
    with pytest.raises(MalformedTokenError):
        verify(f"{body_part}.{sig_part[:-1]}{last}", "licence.lease", TRUSTED)


@given(st.text(max_size=200))
def test_garbage_tokens_raise_only_token_errors(token):
    with pytest.raises(TokenError):
        verify(token, "licence.lease", TRUSTED)


def test_sign_refuses_floats_bad_kinds_and_bad_key_ids():
    with pytest.raises(ValueError, match="floats"):
        sign("licence.lease", {"price": 1.5}, CLOUD_KEY, "k")
    with pytest.raises(ValueError):
        sign("Licence\nLease", LEASE, CLOUD_KEY, "k")
    with pytest.raises(ValueError):
        sign("licence.lease", LEASE, CLOUD_KEY, "k/1")
    with pytest.raises(TypeError):
        sign("licence.lease", ["not", "a", "dict"], CLOUD_KEY, "k")


def test_public_key_text_round_trip_and_fingerprint():
    public = CLOUD_KEY.public_key()
    text = public_key_text(public)
    assert len(text) == 43
    assert public_key_fingerprint(load_public_key(text)) == public_key_fingerprint(public)
    assert len(public_key_fingerprint(public)) == 64
    with pytest.raises(MalformedTokenError):
        load_public_key(text[:-2])
