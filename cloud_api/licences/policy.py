"""The licence settings the service functions run with, and the key that signs leases.

Service functions take a `LicencePolicy` argument (tests pass short lifetimes and their own
key). The ingest's applier has no settings at hand, so it uses the process-wide policy that
`kassa-cloud worker` installs with `use_policy` (or one built from the environment).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_api import signing_keys
from cloud_api.settings import CloudSettings


class LeaseSigner:
    """The cloud signing key (the one that signs configuration codes), loaded on first use so
    that a service without a key still starts and answers everything but lease issuing."""

    def __init__(self, key_id: str, key_file: Path | None = None, private_key: Ed25519PrivateKey | None = None) -> None:
        self.key_id = key_id
        self._key_file = key_file
        self._private_key = private_key
        self._lock = threading.Lock()

    def private_key(self) -> Ed25519PrivateKey:
        """The key, or signing_keys.SigningKeyError saying why it cannot be loaded."""
        with self._lock:
            if self._private_key is None:
                if self._key_file is None:
                    raise signing_keys.SigningKeyError("no signing key configured")
                self._private_key = signing_keys.load(self._key_file, self.key_id).private_key
            return self._private_key


@dataclass(frozen=True)
class LicencePolicy:
    signer: LeaseSigner = field(repr=False)
    lease_s: int = 7 * 86400
    renew_after_s: int = 3600
    clock_margin_s: int = 300
    moves_per_hour: int = 10

    @property
    def renew_min_age_s(self) -> int:
        """A lease younger than this is kept instead of re-signed when the device reports it.
        Devices report on every connect: with a bound of a minute, a broker restart made the
        cloud sign and publish one lease per device. Half the renewal period still renews a
        device reporting on schedule at every other report at worst, an hour at the default."""
        return max(1, self.renew_after_s // 2)


def policy_from_settings(settings: CloudSettings) -> LicencePolicy:
    return LicencePolicy(
        signer=LeaseSigner(settings.signing_key_id, settings.signing_key_file),
        lease_s=settings.licence_lease_s,
        renew_after_s=settings.licence_renew_after_s,
        clock_margin_s=settings.licence_clock_margin_s,
        moves_per_hour=settings.licence_moves_per_hour,
    )


_current: LicencePolicy | None = None
_current_lock = threading.Lock()


def use_policy(policy: LicencePolicy | None) -> None:
    """Install the policy the ingest applier uses (None: build it from the environment)."""
    global _current
    with _current_lock:
        _current = policy


def current_policy() -> LicencePolicy:
    global _current
    with _current_lock:
        if _current is None:
            _current = policy_from_settings(CloudSettings())
        return _current
