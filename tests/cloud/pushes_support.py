"""Shared by tests/cloud/test_pushes_*.py: a migrated database (per backend) with a company
whose devices the tests add, and readers of the pushes tables."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session

from cloud_api.pushes.models import DesiredState, DeviceCommand
from cloud_api.tenancy.models import Company, Device
from cloud_api.tenancy.tokens import create_owner
from tests.cloud.api_support import migrated_engine


@dataclass
class PushDb:
    engine: Engine
    company_id: int
    owner_token: str

    def add_devices(self, *device_ids: str) -> list[str]:
        now = datetime.now(UTC)
        with Session(self.engine) as session, session.begin():
            session.execute(
                insert(Device), [{"device_id": d, "company_id": self.company_id, "created_at": now} for d in device_ids]
            )
        return list(device_ids)

    def state(self, device_id: str, domain: str = "config") -> DesiredState | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(DesiredState, (device_id, domain))

    def pending(self) -> int:
        with Session(self.engine) as session:
            return len(
                session.scalars(select(DesiredState.device_id).where(DesiredState.publish_pending.is_(True))).all()
            )

    def command(self, command_id) -> DeviceCommand:
        with Session(self.engine, expire_on_commit=False) as session:
            command = session.get(DeviceCommand, command_id)
            assert command is not None
            return command


@contextlib.contextmanager
def push_database(backend: str, directory: Path) -> Iterator[PushDb]:
    with migrated_engine(backend, directory) as engine:
        with Session(engine, expire_on_commit=False) as session:
            owner, _admin, token = create_owner(session, "Push owner")
            company = Company(owner_id=owner.id, name="Push Co", created_at=datetime.now(UTC))
            session.add(company)
            session.commit()
        yield PushDb(engine, company.id, token)


def wait_for(predicate: Callable[[], object], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
