"""The cloud side of end-to-end tests: a database plus ingest workers, in-process or as processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from broker.launcher import Mosquitto
from cloud_api.db import make_engine
from cloud_api.ingest.models import DeviceStream, IngestedMessage, SequenceGap
from cloud_api.ingest.worker import IngestWorker, WorkerOptions
from cloud_api.reports.models import SaleRecord
from cloud_api.schema import upgrade as upgrade_schema
from cloud_api.tenancy.models import Company, Device, Role, User
from cloud_api.tenancy.tokens import create_owner, issue_token
from tests.support.agent_process import REPO_ROOT

# How long a worker process gets to stop after SIGTERM before it is killed: generous, because a
# killed worker writes no "stopped" line and its counters are what some tests check.
STOP_GRACE_S = 60


class Cloud:
    def __init__(self, workdir: Path, broker: Mosquitto, database_url: str | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.broker = broker
        self.database_url = database_url or f"sqlite:///{workdir / 'cloud.db'}"
        self.engine: Engine = make_engine(self.database_url)
        upgrade_schema(self.engine)
        self.workers: dict[str, IngestWorker] = {}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    # ------------------------------------------------------------------ workers
    def start_worker(self, worker_id: str = "w1") -> IngestWorker:
        # quick reconnects: tests restart the broker and expect recovery within seconds
        options = WorkerOptions(reconnect_max_s=2.0)
        worker = IngestWorker(self.engine, self.broker.host, self.broker.port, worker_id, options=options).start()
        self.workers[worker_id] = worker
        return worker

    def start_worker_process(
        self, worker_id: str = "p1", *, port: int | None = None, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        env = {**os.environ, "KASSA_CLOUD_DATABASE_URL": self.database_url, **(env or {})}
        with open(self.workdir / f"worker-{worker_id}.log", "ab") as log:  # the child keeps its own descriptor
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cloud_api.main",
                    "worker",
                    "--mqtt-host",
                    self.broker.host,
                    "--mqtt-port",
                    str(port or self.broker.port),
                    "--worker-id",
                    worker_id,
                ],
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.processes[worker_id] = process
        return process

    def kill_worker_process(self, worker_id: str) -> None:
        process = self.processes.pop(worker_id)
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        self.workers.clear()
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
                try:  # a loaded machine may take long to stop cleanly; tests read the stop's log line
                    process.wait(STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    process.kill()
        self.processes.clear()
        self.engine.dispose()

    # ------------------------------------------------------------------ queries
    def applied(self, device_id: str) -> int:
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.count()).select_from(IngestedMessage).where(IngestedMessage.device_id == device_id)
            ).scalar_one()

    def seqs(self, device_id: str) -> list[int]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(IngestedMessage.seq)
                    .where(IngestedMessage.device_id == device_id)
                    .order_by(IngestedMessage.seq)
                ).scalars()
            )

    def sales(self, device_id: str) -> int:
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.count()).select_from(SaleRecord).where(SaleRecord.device_id == device_id)
            ).scalar_one()

    def high_water(self, device_id: str) -> int:
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    select(DeviceStream.high_water).where(DeviceStream.device_id == device_id)
                ).scalar_one_or_none()
                or 0
            )

    def open_gaps(self, device_id: str) -> int:
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.count())
                .select_from(SequenceGap)
                .where(SequenceGap.device_id == device_id, SequenceGap.closed_at.is_(None))
            ).scalar_one()

    def wait_applied(self, device_id: str, count: int, timeout_s: float = 60) -> None:
        """Wait until ``count`` messages from the device are applied (state reports count too)."""
        self._wait(lambda: self.applied(device_id) >= count, f"{count} messages from {device_id}", timeout_s)

    def wait_sales(self, device_id: str, count: int, timeout_s: float = 60) -> None:
        self._wait(lambda: self.sales(device_id) >= count, f"{count} sales from {device_id}", timeout_s)

    @staticmethod
    def _wait(predicate, what: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise TimeoutError(f"cloud did not apply {what} within {timeout_s} s")


# ---------------------------------------------------------------------- the admin API (pushes)
def company_admin_token(engine: Engine, device_id: str, company_name: str = "Demo shop") -> tuple[int, str]:
    """(company id, a company_admin token) for the company owning `device_id`.

    A device no company owns yet is registered under a new owner and company first: pairing
    does that in production; tests and the demo that skip pairing put the row in directly.
    """
    now = datetime.now(UTC)
    with Session(engine, expire_on_commit=False) as session:
        device = session.get(Device, device_id)
        if device is None:
            owner, _admin, _token = create_owner(session, f"{company_name} owner")
            company = Company(owner_id=owner.id, name=company_name, created_at=now)
            session.add(company)
            session.flush()
            device = Device(device_id=device_id, company_id=company.id, created_at=now)
            session.add(device)
            session.flush()
        company = session.get(Company, device.company_id)
        assert company is not None
        user = User(
            name=f"{company.name} admin",
            role=Role.COMPANY_ADMIN,
            owner_id=company.owner_id,
            company_id=company.id,
            created_at=now,
        )
        session.add(user)
        session.flush()
        _row, token = issue_token(session, user, label="tests")
        session.commit()
        return company.id, token


def api_request(
    base_url: str, token: str, method: str, path: str, body: object = None, timeout_s: float = 10
) -> tuple[int, Any]:
    """One call to a running `kassa-cloud serve`: (HTTP status, JSON reply)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base_url + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")
