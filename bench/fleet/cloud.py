"""The cloud side of the fleet run: one company owning every simulated terminal, its cashiers
and licences, and the real ``kassa-cloud worker`` process (ingest, push publisher, licence
sweeper) on the database.

Everything is written through the cloud's own service functions: ``create_owner``,
``cashiers.service.create_cashier`` / ``update_cashier`` (which publish rosters through
``roster.publish_rosters`` and the desired state), ``licences.book.issue_licences`` /
``assign``. Devices are inserted as rows (pairing would do that) and get their first roster
with ``publish_rosters``. Terminals bind their licence themselves (a BindRequest per key).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.orm import Session

from broker import contract as kc
from broker.contract.roster import hash_pin
from cloud_api import signing_keys
from cloud_api.cashiers import service
from cloud_api.cashiers.models import Cashier
from cloud_api.cashiers.roster import publish_rosters
from cloud_api.db import make_engine
from cloud_api.ingest.models import IngestedMessage
from cloud_api.licences import book
from cloud_api.pushes.models import DesiredState
from cloud_api.pushes.outgoing import DocToSend
from cloud_api.reports.models import SaleRecord
from cloud_api.schema import upgrade as upgrade_schema
from cloud_api.tenancy.models import Company, Device, LinkState, Partner, PartnerLink
from cloud_api.tenancy.tokens import create_owner

KEY_ID = "fleet-1"
WORKER_ID = "fleet"
REPO_ROOT = Path(__file__).resolve().parents[2]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class SalesCount:
    rows: int  # rows in the cloud's sales table
    distinct: int  # distinct sale ids among them
    ledger: int  # sale messages in the exactly-once ledger (ingested_messages)
    devices: int  # devices with at least one sale
    per_device_min: int
    per_device_max: int


@dataclass
class FleetCloud:
    workdir: Path
    database_url: str
    engine: Engine
    key_file: Path
    public_key: str
    company_id: int
    admin_user_id: int
    cashier_ids: list[int]
    licence_keys: dict[str, str]  # device id -> the licence key its technician types
    process: subprocess.Popen[bytes] | None = None
    renames: int = field(default=0)

    # ------------------------------------------------------------------ set-up
    @classmethod
    def prepare(
        cls,
        workdir: Path,
        database_url: str | None,
        device_ids: list[str],
        cashiers: int,
        say: Callable[[str], None] = print,
    ) -> FleetCloud:
        workdir.mkdir(parents=True, exist_ok=True)
        url = database_url or f"sqlite:///{workdir / 'cloud.db'}"
        engine = make_engine(url)
        upgrade_schema(engine)
        key = signing_keys.generate(workdir / "signing.pem", KEY_ID)
        now = utcnow()
        with Session(engine, expire_on_commit=False) as session:
            owner, admin, _token = create_owner(session, "Fleet owner")  # commits
            partner = Partner(owner_id=owner.id, name="Fleet partner", created_at=now)
            company = Company(owner_id=owner.id, name="Fleet shop", created_at=now)
            session.add_all([partner, company])
            session.flush()
            session.add(
                PartnerLink(
                    company_id=company.id,
                    partner_id=partner.id,
                    state=LinkState.ACTIVE,
                    open_company_id=company.id,
                    requested_by=admin.id,
                    requested_at=now,
                    decided_at=now,
                )
            )
            session.commit()
            company_id, partner_id, admin_id = company.id, partner.id, admin.id
        cashier_ids = []
        with Session(engine, expire_on_commit=False) as session:
            for number in range(cashiers):
                cashier = service.create_cashier(
                    session,
                    company_id,
                    service.NewCashier(
                        name=f"Cashier {number + 1}",
                        operator_code=f"{1000 + number:04d}",
                        devices=service.ALL_DEVICES,
                        roles=("cashier",) if number else ("cashier", "refund", "admin"),
                    ),
                    by_user=admin_id,
                )
                cashier_ids.append(cashier.id)
        # Every roster entry carries a PIN hash. Written straight into the rows (no device has a
        # roster yet): the API's check_pin_hash runs a full scrypt (~0.23 s) per cashier.
        pin_hash = hash_pin("2468")
        with Session(engine) as session, session.begin():
            session.execute(
                update(Cashier).where(Cashier.company_id == company_id).values(pin_hash=pin_hash, pin_set_at=now)
            )
        say(f"  cloud: company {company_id} with {cashiers} cashiers")
        started = time.monotonic()
        with Session(engine) as session, session.begin():
            session.execute(
                insert(Device), [{"device_id": d, "company_id": company_id, "created_at": now} for d in device_ids]
            )
            publish_rosters(session, company_id, by_user=admin_id)  # roster v1 of every device
        say(f"  cloud: {len(device_ids)} devices registered, rosters built ({time.monotonic() - started:.1f} s)")
        started = time.monotonic()
        keys: list[str] = []
        with Session(engine) as session, session.begin():
            partner_row = session.get(Partner, partner_id)
            assert partner_row is not None
            for first in range(0, len(device_ids), book.MAX_ISSUE):
                count = min(book.MAX_ISSUE, len(device_ids) - first)
                for licence in book.issue_licences(
                    session, partner_row, count, {"seats": 1}, now + timedelta(days=365), by_user=admin_id, now=now
                ):
                    book.assign(session, licence.id, company_id, by_user=admin_id, now=now)
                    keys.append(licence.licence_key)
        say(f"  cloud: {len(keys)} licences issued and assigned ({time.monotonic() - started:.1f} s)")
        return cls(
            workdir,
            url,
            engine,
            workdir / "signing.pem",
            key.public_text,
            company_id,
            admin_id,
            cashier_ids,
            dict(zip(device_ids, keys, strict=True)),  # one licence issued per device
        )

    # ------------------------------------------------------------------ the worker
    @property
    def log_path(self) -> Path:
        return self.workdir / "worker.log"

    def start_worker(self, host: str, port: int, log_level: str = "info") -> None:
        """`kassa-cloud worker`: the ingest, the push publisher and the licence sweeper."""
        env = {
            **os.environ,
            "KASSA_CLOUD_DATABASE_URL": self.database_url,
            "KASSA_CLOUD_SIGNING_KEY_FILE": str(self.key_file),
            "KASSA_CLOUD_SIGNING_KEY_ID": KEY_ID,
            "KASSA_CLOUD_LOG_LEVEL": log_level,
        }
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cloud_api.main",
                    "worker",
                    "--mqtt-host",
                    host,
                    "--mqtt-port",
                    str(port),
                    "--worker-id",
                    WORKER_ID,
                ],
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_worker_subscribed(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"kassa-cloud worker exited with {self.process.returncode}; see {self.log_path}")
            if self.log_path.exists() and "ingest subscribed" in self.log_path.read_text(errors="replace"):
                return
            time.sleep(0.1)
        raise TimeoutError(f"kassa-cloud worker did not subscribe within {timeout_s} s; see {self.log_path}")

    def worker_pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def stop_worker(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def close(self) -> None:
        self.stop_worker()
        self.engine.dispose()

    # ------------------------------------------------------------------ queries
    def pending_docs(self, domain: str) -> int:
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.count())
                .select_from(DesiredState)
                .where(DesiredState.domain == domain, DesiredState.publish_pending.is_(True))
            ).scalar_one()

    def doc_versions(self, domain: str) -> dict[str, int]:
        with self.engine.connect() as conn:
            return dict(
                conn.execute(
                    select(DesiredState.device_id, DesiredState.version).where(DesiredState.domain == domain)
                ).all()
            )

    def published_at(self, domain: str) -> dict[str, float]:
        """When the publisher recorded each device's document as PUBACKed (Unix time)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(DesiredState.device_id, DesiredState.published_at).where(DesiredState.domain == domain)
            )
            return {
                device: (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()
                for device, at in rows
                if at is not None
            }

    def sales(self) -> SalesCount:
        with self.engine.connect() as conn:
            rows, distinct = conn.execute(select(func.count(), func.count(SaleRecord.sale_id.distinct()))).one()
            ledger = conn.execute(
                select(func.count())
                .select_from(IngestedMessage)
                .where(IngestedMessage.type == kc.MessageType.SALE.value)
            ).scalar_one()
            per_device = (
                select(func.count().label("n")).select_from(SaleRecord).group_by(SaleRecord.device_id).subquery()
            )
            devices, low, high = conn.execute(
                select(func.count(), func.min(per_device.c.n), func.max(per_device.c.n))
            ).one()
        return SalesCount(rows, distinct, ledger, devices, low or 0, high or 0)

    def sale_rows(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(SaleRecord)).scalar_one()

    def roster_payload(self, device_id: str) -> bytes:
        """The `down/state/cashiers` message the publisher sends this device (for the baseline's size)."""
        with Session(self.engine) as session:
            row = session.get(DesiredState, (device_id, "cashiers"))
            assert row is not None
            return DocToSend(row.device_id, row.domain, row.version, row.doc, row.updated_at).publication().payload

    def change_roster(self) -> None:
        """Rename the first cashier, as the admin API does: every device's roster gets a new version."""
        self.renames += 1
        with Session(self.engine) as session:
            service.update_cashier(
                session,
                self.company_id,
                self.cashier_ids[0],
                service.CashierChanges(name=f"Cashier 1 (renamed {self.renames})"),
                by_user=self.admin_user_id,
            )
