"""Shared by tests/cloud/test_licence_*.py: a migrated database with an owner, a partner and
three companies (only the first linked to the partner), device keys, a test policy (short lifetimes,
its own cloud key), and readers of the documents and commands the licence book leaves for the publisher."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from broker import contract as kc
from broker.contract import licence as kl
from broker.contract.signing import public_key_fingerprint, public_key_text
from cloud_api.app import create_app
from cloud_api.licences import book
from cloud_api.licences.models import Licence, LicenceEvent
from cloud_api.licences.policy import LeaseSigner, LicencePolicy
from cloud_api.pushes.models import DesiredState, DeviceCommand
from cloud_api.settings import CloudSettings
from cloud_api.tenancy.models import Company, Device, LinkState, Partner, PartnerLink, User
from cloud_api.tenancy.tokens import create_owner
from tests.cloud.api_support import Api, migrated_engine

CLOUD_KEY_ID = "cloud-test"
LEASE_S = 600
RENEW_S = 60
MARGIN_S = 30
MOVES_PER_HOUR = 3
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def short_policy(cloud_key: Ed25519PrivateKey, **overrides: Any) -> LicencePolicy:
    values = {
        "lease_s": LEASE_S,
        "renew_after_s": RENEW_S,
        "clock_margin_s": MARGIN_S,
        "moves_per_hour": MOVES_PER_HOUR,
        **overrides,
    }
    return LicencePolicy(signer=LeaseSigner(CLOUD_KEY_ID, private_key=cloud_key), **values)


@dataclass
class DeviceKey:
    device_id: str
    private_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def public_text(self) -> str:
        return public_key_text(self.private_key.public_key())

    @property
    def fingerprint(self) -> str:
        return public_key_fingerprint(self.private_key.public_key())

    def receipt(self, licence_id: str, epoch: int, at: datetime = T0) -> str:
        claims = kl.ReleaseClaims(
            licence_id=licence_id,
            device_id=self.device_id,
            device_key=self.fingerprint,
            epoch=epoch,
            released_at=int(at.timestamp()),
        )
        return kl.sign_release(claims, self.private_key)


@dataclass
class LicenceDb:
    engine: Engine
    cloud_key: Ed25519PrivateKey
    owner_id: int
    admin_user_id: int
    partner_id: int
    company_id: int  # linked to the partner: it can be assigned licences
    other_company_id: int
    third_company_id: int

    @property
    def policy(self) -> LicencePolicy:
        return short_policy(self.cloud_key)

    @property
    def trusted(self) -> dict[str, Any]:
        return {CLOUD_KEY_ID: self.cloud_key.public_key()}

    def add_device(self, device_id: str, company_id: int | None = None, *, with_key: bool = False) -> DeviceKey:
        key = DeviceKey(device_id)
        with Session(self.engine) as session, session.begin():
            session.add(
                Device(
                    device_id=device_id,
                    company_id=company_id or self.company_id,
                    public_key=key.public_text if with_key else None,
                    created_at=T0,
                )
            )
        return key

    def issue(
        self,
        count: int = 1,
        valid_until: datetime = T0 + timedelta(days=365),
        *,
        assign_to: int | None = None,
        unseal: bool = False,
    ) -> list[tuple[str, str]]:
        """(licence id, canonical key) of new licences, assigned to a company or unsealed into
        the partner's stock when asked."""
        with Session(self.engine) as session, session.begin():
            partner = session.get(Partner, self.partner_id)
            issued = book.issue_licences(
                session, partner, count, {"seats": 1}, valid_until, by_user=self.admin_user_id, now=T0
            )
            for licence in issued:
                if assign_to is not None:
                    book.assign(session, licence.id, assign_to, by_user=self.admin_user_id, now=T0)
                elif unseal:
                    book.unseal(session, licence.id, by_user=self.admin_user_id, now=T0)
            return [(licence.id, licence.licence_key) for licence in issued]

    def licence(self, licence_id: str) -> Licence:
        with Session(self.engine, expire_on_commit=False) as session:
            licence = session.get(Licence, licence_id)
            assert licence is not None
            return licence

    def events(self, licence_id: str) -> list[LicenceEvent]:
        with Session(self.engine, expire_on_commit=False) as session:
            return list(
                session.scalars(
                    select(LicenceEvent).where(LicenceEvent.licence_id == licence_id).order_by(LicenceEvent.id)
                )
            )

    def doc(self, device_id: str) -> tuple[int, list[str]] | None:
        """(version, lease tokens) of the device's desired licence document."""
        with Session(self.engine) as session:
            row = session.get(DesiredState, (device_id, "licence"))
            return None if row is None else (row.version, list(row.doc["leases"]))

    def leases(self, device_id: str) -> list[kl.LeaseClaims]:
        found = self.doc(device_id)
        return [kl.read_lease(token, self.trusted) for token in (found[1] if found else [])]

    def release_commands(self, device_id: str) -> list[DeviceCommand]:
        with Session(self.engine, expire_on_commit=False) as session:
            return list(
                session.scalars(
                    select(DeviceCommand)
                    .where(DeviceCommand.device_id == device_id, DeviceCommand.name == kc.CommandName.LICENCE_RELEASE)
                    .order_by(DeviceCommand.created_at)
                )
            )


def _link(session: Session, company_id: int, partner_id: int, user_id: int) -> None:
    session.add(
        PartnerLink(
            company_id=company_id,
            partner_id=partner_id,
            state=LinkState.ACTIVE,
            open_company_id=company_id,
            requested_by=user_id,
            requested_at=T0,
            decided_at=T0,
        )
    )


@contextlib.contextmanager
def licence_database(backend: str, directory: Path) -> Iterator[LicenceDb]:
    with migrated_engine(backend, directory) as engine:
        with Session(engine, expire_on_commit=False) as session:
            owner, admin, _token = create_owner(session, "Licence owner")
            partner = Partner(owner_id=owner.id, name="Seller", created_at=T0)
            company = Company(owner_id=owner.id, name="Shop", created_at=T0)
            other = Company(owner_id=owner.id, name="Other shop", created_at=T0)
            third = Company(owner_id=owner.id, name="Third shop", created_at=T0)
            session.add_all([partner, company, other, third])
            session.flush()
            _link(session, company.id, partner.id, admin.id)
            session.commit()
        yield LicenceDb(
            engine, Ed25519PrivateKey.generate(), owner.id, admin.id, partner.id, company.id, other.id, third.id
        )


def write_signing_key(directory: Path) -> tuple[Path, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    path = directory / "signing.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    os.chmod(path, 0o600)
    return path, key


@contextlib.contextmanager
def licence_api(backend: str, directory: Path) -> Iterator[tuple[Api, Ed25519PrivateKey]]:
    """The HTTP API with a real signing key file and short licence lifetimes."""
    key_file, key = write_signing_key(directory)
    with migrated_engine(backend, directory) as engine:
        with Session(engine, expire_on_commit=False) as session:
            _owner, _admin, token = create_owner(session, "Owner")
        settings = CloudSettings(
            database_url=str(engine.url),
            signing_key_file=key_file,
            signing_key_id=CLOUD_KEY_ID,
            licence_lease_s=LEASE_S,
            licence_renew_after_s=RENEW_S,
            licence_clock_margin_s=MARGIN_S,
            licence_moves_per_hour=MOVES_PER_HOUR,
        )
        with TestClient(create_app(settings, engine), raise_server_exceptions=False) as client:
            yield Api(client, engine, token), key


def user_id_of(engine: Engine, name: str) -> int:
    with Session(engine) as session:
        return session.scalars(select(User.id).where(User.name == name)).one()
