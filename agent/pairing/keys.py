"""The device's own keys, made once at first start and kept in ``<state_dir>/keys/`` (0700).

- ``identity.key``: Ed25519, the device's identity. It signs pairing requests now and will
  sign licence receipts; its public key is what the cloud binds the device to.
- ``broker.key`` + ``broker.csr``: EC P-256 for the broker client certificate (CN = device id).
- ``broker.crt``, ``broker-ca.crt``: the certificate and the broker's CA, once paired.

Private keys are written with mode 0600 from the first byte (O_EXCL, so two starts racing
never both write one) and never leave the device. A key file later found readable by others
is tightened back to 0600, with a warning.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import NameOID

log = logging.getLogger(__name__)

KEYS_DIR = "keys"
IDENTITY_KEY = "identity.key"
BROKER_KEY = "broker.key"
BROKER_CSR = "broker.csr"
BROKER_CERT = "broker.crt"
BROKER_CA = "broker-ca.crt"


class KeyFileError(Exception):
    """A key file exists but cannot be used; the message says which and what to do."""


class DeviceKeys(NamedTuple):
    identity: Ed25519PrivateKey
    broker_key: ec.EllipticCurvePrivateKey
    csr: str  # PEM, for broker_key


def keys_dir(state_dir: Path) -> Path:
    directory = state_dir / KEYS_DIR
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return directory


def load_or_create_identity_key(state_dir: Path) -> Ed25519PrivateKey:
    """The device's Ed25519 identity key, made on first use."""
    key = _load_or_create(keys_dir(state_dir) / IDENTITY_KEY, Ed25519PrivateKey.generate)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{keys_dir(state_dir) / IDENTITY_KEY} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def load_or_create_broker_key(state_dir: Path) -> ec.EllipticCurvePrivateKey:
    """The private key of the broker client certificate (EC P-256), made on first use."""
    path = keys_dir(state_dir) / BROKER_KEY
    key = _load_or_create(path, lambda: ec.generate_private_key(ec.SECP256R1()))
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise KeyFileError(f"{path} is not an EC P-256 key; move it away to make a new one")
    return key


def load_or_create_device_keys(state_dir: Path, device_id: str) -> DeviceKeys:
    """The identity key, the broker key and its CSR, each made on first use: what a registration
    and a certificate renewal send."""
    identity = load_or_create_identity_key(state_dir)
    broker_key = load_or_create_broker_key(state_dir)
    return DeviceKeys(identity, broker_key, load_or_create_csr(state_dir, device_id, broker_key))


def load_or_create_csr(state_dir: Path, device_id: str, key: ec.EllipticCurvePrivateKey) -> str:
    """The CSR for the broker certificate (PEM), made once so every registration sends the same one."""
    path = keys_dir(state_dir) / BROKER_CSR
    if path.exists():
        csr = x509.load_pem_x509_csr(path.read_bytes())
        names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        same_key = _spki(csr.public_key()) == _spki(key.public_key())
        if same_key and [n.value for n in names] == [device_id]:
            return path.read_text()
        log.warning("stored CSR does not match this device's id or key; making a new one", extra={"path": str(path)})
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kassa"), x509.NameAttribute(NameOID.COMMON_NAME, device_id)]
    )
    pem = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    write_public_file(path, pem)
    return pem.decode()


def _spki(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def same_public_key(a: PublicKeyTypes, b: PublicKeyTypes) -> bool:
    return _spki(a) == _spki(b)


def _load_or_create(path: Path, generate):
    try:
        return _load_private(path)
    except FileNotFoundError:
        pass
    key = generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _load_private(path)  # another start made it first: use that one
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    log.info("made a device key", extra={"path": str(path)})
    return key


def _load_private(path: Path):
    mode = path.stat().st_mode & 0o777  # FileNotFoundError: the caller makes one
    if mode & 0o077:
        log.warning("device key was readable by others; set to 0600", extra={"path": str(path), "mode": f"{mode:o}"})
        os.chmod(path, 0o600)
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError):
        raise KeyFileError(
            f"{path} is not an unencrypted PEM private key; move it away to make a new one "
            "(the device must then be paired again)"
        ) from None


def write_public_file(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` atomically (temp file, fsync, rename): a power cut leaves old or new."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
