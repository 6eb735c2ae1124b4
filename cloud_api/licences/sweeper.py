"""The periodic sweep: no licence waits forever for a device that never answers.

- RELEASING past its deadline (the old device's last lease expiry + clock margin): granted
  to the new device, epoch + 1. Every token the old device may hold has run out by then.
- BOUND past the licence's own expiry: the device's document drops the lease.

`sweep(session, now, policy)` is a plain function (tests call it with a chosen `now`);
`LicenceSweeper` runs it in a thread of `kassa-cloud worker`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from broker.logs import RepeatedLog
from cloud_api.licences.binding import grant_to_target
from cloud_api.licences.leases import publish_doc, require_signer
from cloud_api.licences.models import Licence, LicenceAction, LicenceState
from cloud_api.licences.policy import LicencePolicy
from cloud_api.licences.records import SYSTEM, LicenceRefused, record_event

log = logging.getLogger(__name__)
BATCH = 200


@dataclass
class SweepResult:
    granted: int = 0  # moves completed because the old device stayed silent
    expired: int = 0  # leases dropped because the licence ran out


def sweep(session: Session, now: datetime, policy: LicencePolicy) -> SweepResult:
    """One pass, inside the caller's transaction (commit afterwards)."""
    require_signer(policy)
    result = SweepResult()
    due = session.scalars(
        select(Licence)
        .where(Licence.state == LicenceState.RELEASING, Licence.release_deadline <= now)
        .order_by(Licence.id)
        .limit(BATCH)
        .with_for_update()
    )
    for licence in list(due):
        grant_to_target(
            session,
            licence,
            now,
            policy,
            actor=SYSTEM,
            action=LicenceAction.RELEASED_BY_TIMEOUT,
            detail="old device silent; its lease ran out",
        )
        result.granted += 1
    ran_out = session.scalars(
        select(Licence)
        .where(Licence.state == LicenceState.BOUND, Licence.valid_until <= now, Licence.lease_token.is_not(None))
        .order_by(Licence.id)
        .limit(BATCH)
        .with_for_update()
    )
    for licence in list(ran_out):
        licence.lease_token = None
        record_event(
            session,
            licence,
            actor=SYSTEM,
            action=LicenceAction.EXPIRED,
            from_state=licence.state,
            from_device_id=licence.device_id,
            now=now,
            detail="the licence ran out",
        )
        assert licence.device_id is not None
        publish_doc(session, licence.device_id, now)
        result.expired += 1
    return result


class LicenceSweeper:
    """Runs `sweep` every `every_s` seconds until stopped; several workers may run one (the
    row locks, or SQLite's single writer, let only one of them change a licence)."""

    def __init__(self, engine: Engine, policy: LicencePolicy, every_s: float = 15.0) -> None:
        self.engine = engine
        self.policy = policy
        self.every_s = every_s
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> LicenceSweeper:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="licence-sweeper", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def run_once(self) -> SweepResult:
        with Session(self.engine) as session, session.begin():
            return sweep(session, datetime.now(UTC), self.policy)

    def _run(self) -> None:
        skipped = RepeatedLog(log)  # every_s is short (15 s): a lasting refusal would fill the journal
        while not self._stopping.wait(self.every_s):
            try:
                result = self.run_once()
                if skipped.active:
                    skipped.ended(logging.INFO, "licence sweeps run again")
                if result.granted or result.expired:
                    log.info("licence sweep", extra=vars(result))
            except LicenceRefused as exc:
                skipped.occurred(
                    logging.WARNING, "licence sweep skipped", key=exc.code, reason=exc.code, detail=exc.message
                )
            except Exception:
                log.exception("licence sweep failed; retrying")
