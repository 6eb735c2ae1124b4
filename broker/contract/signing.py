"""Typed Ed25519-signed payloads: licence leases, release receipts and anything else signed.

A token is two base64url (unpadded) parts joined by a dot:

    base64url(body) "." base64url(signature)
    body      = canonical JSON {"kid": <key id>, "kind": <kind>, "payload": {...}}
    signature = Ed25519 over b"kassa:" + kind + b"\\n" + body

The kind is signed twice on purpose: inside the body, so a verifier can say "this is a
release receipt, not a lease", and as a prefix of the signed bytes, so no token of one kind
verifies as another even if a verifier forgot to look at the body. The key id lets the cloud
rotate keys: verifiers hold a map of trusted key ids and drop old ids when their tokens expire.
Canonical JSON means sorted keys, no whitespace, UTF-8, and no floats (they do not
canonicalise the same way in every language; amounts are integers anyway).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "MAX_TOKEN_LENGTH",
    "BadSignatureError",
    "MalformedTokenError",
    "TokenError",
    "UnknownKeyError",
    "WrongKindError",
    "canonical_json",
    "load_public_key",
    "public_key_fingerprint",
    "public_key_text",
    "sign",
    "verify",
]

MAX_TOKEN_LENGTH = 8192
_SIGNATURE_LENGTH = 64
_KIND_RE = re.compile(r"[a-z][a-z0-9_.]{0,63}")
_KEY_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_BASE64URL_RE = re.compile(r"[A-Za-z0-9_-]+")


class TokenError(ValueError):
    """A token that must not be trusted; the subclass says why."""


class MalformedTokenError(TokenError):
    """Not a kassa token at all: bad shape, base64, JSON or signature length."""


class WrongKindError(TokenError):
    """A genuine-looking token of another kind (a receipt offered as a lease)."""


class UnknownKeyError(TokenError):
    """Signed with a key id this verifier does not trust (never issued, or rotated out)."""


class BadSignatureError(TokenError):
    """The signature does not match the body: tampered, or signed by another key."""


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8; refuses floats, NaN and non-string keys."""
    _refuse_floats(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def sign(kind: str, payload: dict[str, Any], private_key: Ed25519PrivateKey, key_id: str) -> str:
    """Sign `payload` as a token of `kind` with the key known to verifiers as `key_id`."""
    if not _KIND_RE.fullmatch(kind):
        raise ValueError(f"kind {kind!r} must be lowercase letters, digits, '_' or '.'")
    if not _KEY_ID_RE.fullmatch(key_id):
        raise ValueError(f"key id {key_id!r} must be 1-64 of A-Z a-z 0-9 . _ -")
    if not isinstance(payload, dict):
        raise TypeError("the payload of a signed token is a JSON object (dict)")
    body = canonical_json({"kid": key_id, "kind": kind, "payload": payload})
    signature = private_key.sign(_signed_bytes(kind, body))
    token = f"{_b64encode(body)}.{_b64encode(signature)}"
    if len(token) > MAX_TOKEN_LENGTH:
        raise ValueError(f"token is {len(token)} characters, limit {MAX_TOKEN_LENGTH}")
    return token


def verify(token: str, kind: str, trusted_keys: Mapping[str, Ed25519PublicKey]) -> dict[str, Any]:
    """Return the payload of a valid token of `kind`, or raise a TokenError subclass."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise MalformedTokenError("a token is two base64url parts joined by one '.'")
    body_part, signature_part = token.split(".")
    body = _b64decode(body_part)
    signature = _b64decode(signature_part)
    if len(signature) != _SIGNATURE_LENGTH:
        raise MalformedTokenError(f"an Ed25519 signature is {_SIGNATURE_LENGTH} bytes")
    key_id, token_kind, payload = _read_body(body)
    if token_kind != kind:
        raise WrongKindError(f"expected a {kind!r} token, got {token_kind!r}")
    public_key = trusted_keys.get(key_id)
    if public_key is None:
        raise UnknownKeyError(f"key id {key_id!r} is not trusted here")
    try:
        public_key.verify(signature, _signed_bytes(kind, body))
    except InvalidSignature:
        raise BadSignatureError(f"signature does not match ({kind}, key {key_id})") from None
    return payload


def public_key_text(public_key: Ed25519PublicKey) -> str:
    """The raw 32-byte public key as unpadded base64url (43 characters)."""
    return _b64encode(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw))


def load_public_key(text: str) -> Ed25519PublicKey:
    """The inverse of public_key_text; raises MalformedTokenError on anything else."""
    raw = _b64decode(text)
    if len(raw) != 32:
        raise MalformedTokenError("an Ed25519 public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def public_key_fingerprint(public_key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw public key, hex: how leases name the device key they are bound to."""
    return hashlib.sha256(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()


def _signed_bytes(kind: str, body: bytes) -> bytes:
    return b"kassa:" + kind.encode() + b"\n" + body


def _read_body(body: bytes) -> tuple[str, str, dict[str, Any]]:
    try:
        decoded = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedTokenError("token body is not UTF-8 JSON") from None
    if not isinstance(decoded, dict) or set(decoded) != {"kid", "kind", "payload"}:
        raise MalformedTokenError("token body must hold exactly kid, kind and payload")
    key_id, kind, payload = decoded["kid"], decoded["kind"], decoded["payload"]
    if not isinstance(key_id, str) or not isinstance(kind, str) or not isinstance(payload, dict):
        raise MalformedTokenError("kid and kind are strings, payload is an object")
    return key_id, kind, payload


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not isinstance(text, str) or not _BASE64URL_RE.fullmatch(text):
        raise MalformedTokenError("not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise MalformedTokenError("not unpadded base64url") from None
    # One spelling per byte string, so equal tokens are equal strings (dedupe, storage).
    if _b64encode(data) != text:
        raise MalformedTokenError("non-canonical base64url")
    return data


def _refuse_floats(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            raise ValueError("signed payloads hold no floats")
        if isinstance(item, dict):
            if not all(isinstance(key, str) for key in item):
                raise ValueError("signed payload keys are strings")
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
