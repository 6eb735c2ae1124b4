"""Licence tests: a cloud signing key pinned in the agent's config, lease tokens, clocks."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker import contract as kc
from broker.contract import licence as kl
from broker.contract.signing import public_key_text

CLOUD_KEY_ID = "cloud-1"
CLOUD_KEY = Ed25519PrivateKey.generate()
T0 = 1_800_000_000.0  # a fixed wall-clock start for tests with injected clocks
WEEK = 7 * 86400


def trust_section(key: Ed25519PrivateKey = CLOUD_KEY, key_id: str = CLOUD_KEY_ID) -> str:
    return f'[trust]\ncloud_keys = {{ "{key_id}" = "{public_key_text(key.public_key())}" }}\n'


@dataclass
class Clocks:
    """Wall and monotonic clocks a test moves by hand."""

    wall_now: float = T0
    mono_now: float = 1000.0

    def wall(self) -> float:
        return self.wall_now

    def mono(self) -> float:
        return self.mono_now

    def advance(self, seconds: float) -> None:
        self.wall_now += seconds
        self.mono_now += seconds


def lease_token(
    device_id: str,
    device_key: str,
    *,
    licence_id: str = "LIC-1",
    epoch: int = 1,
    issued_at: float = T0,
    lifetime_s: int = WEEK,
    renew_after_s: int = 3600,
    key: Ed25519PrivateKey = CLOUD_KEY,
    key_id: str = CLOUD_KEY_ID,
) -> str:
    claims = kl.LeaseClaims(
        licence_id=licence_id,
        company_id=1,
        device_id=device_id,
        device_key=device_key,
        epoch=epoch,
        issued_at=int(issued_at),
        expires_at=int(issued_at) + lifetime_s,
        renew_after_s=renew_after_s,
    )
    return kl.sign_lease(claims, key, key_id)


def flip(token: str, part: int) -> str:
    """The token with one character changed in its body (part 0) or signature (part 1)."""
    parts = token.split(".")
    text = parts[part]
    index = len(text) * 3 // 5
    parts[part] = text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1 :]
    return ".".join(parts)


def licence_doc(version: int, tokens: list[str], device_id: str) -> kc.Envelope:
    body = kc.StateDoc(
        domain=kc.StateDomain.LICENCE, version=version, doc={"leases": tokens}, issued_at=datetime.now(UTC)
    )
    return kc.down_message(body, device_id=device_id)


def release_command(licence_id: str, epoch: int, device_id: str, message_id: uuid.UUID | None = None) -> kc.Envelope:
    body = kc.Command(name=kc.CommandName.LICENCE_RELEASE.value, args={"licence_id": licence_id, "epoch": epoch})
    return kc.down_message(body, device_id=device_id, **({"message_id": message_id} if message_id else {}))


def identity_public_key(state_dir: Path) -> Any:
    from agent.pairing.keys import load_or_create_identity_key

    return load_or_create_identity_key(state_dir).public_key()
