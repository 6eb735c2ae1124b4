"""The cloud's Ed25519 signing key: configuration QR codes now, licence leases later.

The private key lives in a PEM file readable by the service only (0600). Devices
pin the public key under its key id, so a new key id can be introduced before
the old one is retired (rotation).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.contract.signing import public_key_text


class SigningKeyError(Exception):
    pass


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    private_key: Ed25519PrivateKey

    @property
    def public_text(self) -> str:
        return public_key_text(self.private_key.public_key())


def generate(path: Path, key_id: str) -> SigningKey:
    """Write a new key to ``path`` (refusing to overwrite one) with mode 0600 from the start."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SigningKeyError(f"{path} exists; a signing key is never overwritten (move it away to rotate)") from None
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return SigningKey(key_id, key)


def load_private_pem(path: Path, what: str) -> Any:
    """The unencrypted PEM private key in `path`, refused unless only its owner can read it.
    Raises ValueError saying what is wrong and what to do."""
    try:
        mode = path.stat().st_mode & 0o777
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the {what} {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise ValueError(f"the {what} {path} is readable by others (mode {mode:o}); chmod 600 it")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ValueError(f"{path} is not an unencrypted PEM private key") from None


def load(path: Path, key_id: str) -> SigningKey:
    try:
        key = load_private_pem(path, "signing key")
    except ValueError as exc:
        raise SigningKeyError(str(exc)) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return SigningKey(key_id, key)
