"""Delivering the outbox (`mail_outbox`) through the SMTP relay.

`MailSender.send_due()` is one pass: every queued mail whose time has come is claimed, sent and
marked. A claim is a conditional UPDATE (queued -> sending, only while still queued and due) in
its own committed transaction, so of several senders (several `serve` processes) exactly one
claims a mail; `attempts` grows with each claim and identifies it, so a sender only ever
settles its own claim. A refused or failed send puts the mail back in the queue 30 s later,
doubling with every attempt up to an hour; after `mail_max_attempts` attempts, or at once when
the relay refuses the mail for good (a 5xx reply), it is marked failed with the reason.

The crash window, honestly: SMTP cannot deliver exactly once. If the process stops after the
relay accepted a mail but before the row says "sent" (or the reply to the end of DATA is
lost), the row stays "sending". After `STALE_CLAIM` any sender puts it back in the queue and
it is sent again: the recipient may get it twice. Every send of a mail carries the same
Message-ID, made when it was queued, so mail systems and clients can tell the copies apart.
The opposite (a mail silently never sent) does not happen: a claim is only ever settled by
the relay's answer or by this re-queue. A sender slower than `STALE_CLAIM` in one send is the
same case: another sender may re-send, and the slow one logs that it lost its claim.

`start()` runs passes in a daemon thread every `mail_poll_s`, and at once after `wake()` (a
request handler calls it after committing a mail). Logs: one info line per sent mail with its
id and the recipient's domain; warnings say what to check. The password is never logged, and
the relay's replies are scrubbed of it before they are logged or stored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, parseaddr
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from broker.logs import RepeatedLog
from cloud_api.db import rows_matched, utc
from cloud_api.mail.models import LAST_ERROR_MAX, MailOutbox, MailState
from cloud_api.mail.outbox import checked_address
from cloud_api.mail.relay import SMTP_TIMEOUT_S, MailRefused, Relay, RelayUnavailable
from cloud_api.settings import CloudSettings

log = logging.getLogger(__name__)

STALE_CLAIM = timedelta(minutes=5)  # far beyond one send (SMTP_TIMEOUT_S per reply)
FIRST_RETRY_S = 30.0
MAX_RETRY_S = 3600.0
BATCH = 100
# 7bit: bodies go out quoted-printable or base64, which every relay carries (8BITMIME is optional).
MESSAGE_POLICY = SMTP_POLICY.clone(cte_type="7bit")


def retry_delay_s(attempts: int) -> float:
    """Wait before the next send of a mail that failed `attempts` times."""
    return min(FIRST_RETRY_S * 2 ** (attempts - 1), MAX_RETRY_S)


class MailSender:
    """Sends the committed mails of `mail_outbox` through `settings.mail_host`."""

    def __init__(self, engine: Engine, settings: CloudSettings) -> None:
        if settings.mail_host is None:
            raise ValueError("mail is off: set KASSA_CLOUD_MAIL_HOST to the SMTP relay to send mail")
        if settings.mail_username and settings.mail_password is None:
            raise ValueError("KASSA_CLOUD_MAIL_USERNAME is set without KASSA_CLOUD_MAIL_PASSWORD; set both or neither")
        credentials = (settings.mail_username or "") + (
            settings.mail_password.get_secret_value() if settings.mail_password else ""
        )
        if not credentials.isascii():
            raise ValueError(
                "KASSA_CLOUD_MAIL_USERNAME and KASSA_CLOUD_MAIL_PASSWORD must be ASCII: SMTP login sends no other"
            )
        self.engine = engine
        self.settings = settings
        self.host = settings.mail_host
        self.envelope_from = checked_address(parseaddr(settings.mail_from)[1])
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._relay_trouble = RepeatedLog(log)  # a relay down for hours: not one line per poll
        self._database_trouble = RepeatedLog(log)
        if settings.mail_username and not settings.mail_starttls and self.host not in ("127.0.0.1", "::1", "localhost"):
            log.warning(
                "the mail password is sent unencrypted; set KASSA_CLOUD_MAIL_STARTTLS=true",
                extra={"host": self.host, "port": settings.mail_port},
            )

    # ------------------------------------------------------------------ one pass

    def send_due(self, now: datetime | None = None) -> int:
        """Send every due queued mail; return how many the relay accepted. `now` pins the clock."""

        def clock() -> datetime:
            return now if now is not None else datetime.now(UTC)

        self._requeue_stale(clock())
        sent = 0
        relay = Relay(self.settings)
        try:
            while not self._stopping.is_set():
                due = self._due_ids(clock())
                for mail_id in due:
                    if self._stopping.is_set():
                        break
                    mail = self._claim(mail_id, clock())
                    if mail is None:
                        continue  # another sender took it
                    if self._send_one(relay, mail, clock):
                        sent += 1
                    elif relay.unavailable:
                        return sent  # the others wait in the queue, their attempts untouched
                if len(due) < BATCH:
                    break
        finally:
            relay.close()
        return sent

    def _send_one(self, relay: Relay, mail: MailOutbox, clock: Callable[[], datetime]) -> bool:
        domain = mail.to_address.rpartition("@")[2]
        try:
            message = self._compose(mail)
        except ValueError as exc:  # a row queue_mail did not write: it never will be a mail
            self._settle_failure(mail, clock(), f"cannot compose the mail: {exc}", permanent=True, quiet=False)
            return False
        try:
            relay.send(message, self.envelope_from, mail.to_address)
        except RelayUnavailable as exc:
            self._relay_trouble.occurred(
                logging.WARNING,
                "mail relay unavailable; mails wait in the queue",
                key=exc.check,
                host=self.host,
                port=self.settings.mail_port,
                error=exc.error,
                check=exc.check,
            )
            self._settle_failure(mail, clock(), exc.error, permanent=False, quiet=True)
            return False
        except MailRefused as exc:
            self._settle_failure(mail, clock(), exc.error, permanent=exc.permanent, quiet=False)
            return False
        if self._relay_trouble.active:
            self._relay_trouble.ended(logging.INFO, "mail relay reachable again", host=self.host)
        self._settle(mail, {"state": MailState.SENT, "sent_at": clock(), "last_error": None})
        log.info("mail sent", extra={"mail_id": mail.id, "domain": domain, "attempt": mail.attempts})
        return True

    def _compose(self, mail: MailOutbox) -> EmailMessage:
        message = EmailMessage(policy=MESSAGE_POLICY)
        message["From"] = self.settings.mail_from
        message["To"] = mail.to_address
        message["Subject"] = mail.subject
        message["Date"] = format_datetime(utc(mail.created_at))
        message["Message-ID"] = mail.message_id
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a robot
        message.set_content(mail.body_text)
        if mail.body_html is not None:
            message.add_alternative(mail.body_html, subtype="html")
        return message

    # ------------------------------------------------------------------ the outbox rows

    def _requeue_stale(self, now: datetime) -> None:
        stale = (MailOutbox.state == MailState.SENDING) & (MailOutbox.claimed_at < now - STALE_CLAIM)
        used_up = MailOutbox.attempts >= self.settings.mail_max_attempts
        note = "the sender stopped during a send (process ended?); it may have been delivered"
        with Session(self.engine) as session:
            if session.scalar(select(MailOutbox.id).where(stale).limit(1)) is None:
                return  # the usual case, answered by a read: no write lock on every pass
        # Writes in a transaction of their own: on SQLite a read turned write may fail at once when
        # another sender wrote in between.
        with Session(self.engine) as session, session.begin():
            failed = rows_matched(
                session,
                update(MailOutbox).where(stale, used_up).values(state=MailState.FAILED, last_error=note),
            )
            requeued = rows_matched(
                session,
                update(MailOutbox).where(stale).values(state=MailState.QUEUED, next_attempt_at=now, last_error=note),
            )
        if failed or requeued:
            log.warning(
                "mails left sending by a stopped sender: re-queued (a recipient may get one twice) or failed",
                extra={"requeued": requeued, "failed": failed},
            )

    def _due_ids(self, now: datetime) -> list[int]:
        with Session(self.engine) as session:
            return list(
                session.scalars(
                    select(MailOutbox.id)
                    .where(MailOutbox.state == MailState.QUEUED, MailOutbox.next_attempt_at <= now)
                    .order_by(MailOutbox.next_attempt_at, MailOutbox.id)
                    .limit(BATCH)
                )
            )

    def _claim(self, mail_id: int, now: datetime) -> MailOutbox | None:
        """Take the mail for this sender, in a transaction of its own: committed before the send."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            claimed = rows_matched(
                session,
                update(MailOutbox)
                .where(
                    MailOutbox.id == mail_id,
                    MailOutbox.state == MailState.QUEUED,
                    MailOutbox.next_attempt_at <= now,
                )
                .values(state=MailState.SENDING, claimed_at=now, attempts=MailOutbox.attempts + 1),
            )
            if not claimed:
                return None
            return session.get(MailOutbox, mail_id, populate_existing=True)

    def _settle_failure(self, mail: MailOutbox, now: datetime, error: str, *, permanent: bool, quiet: bool) -> None:
        domain = mail.to_address.rpartition("@")[2]
        error = error[:LAST_ERROR_MAX]
        if permanent or mail.attempts >= self.settings.mail_max_attempts:
            self._settle(mail, {"state": MailState.FAILED, "last_error": error})
            log.warning(
                "mail given up: check the recipient address, or the relay's log for this Message-ID",
                extra={"mail_id": mail.id, "domain": domain, "attempts": mail.attempts, "error": error},
            )
            return
        delay = retry_delay_s(mail.attempts)
        self._settle(
            mail,
            {"state": MailState.QUEUED, "next_attempt_at": now + timedelta(seconds=delay), "last_error": error},
        )
        if not quiet:
            log.warning(
                "mail refused by the relay; will retry",
                extra={
                    "mail_id": mail.id,
                    "domain": domain,
                    "attempt": mail.attempts,
                    "retry_in_s": delay,
                    "error": error,
                },
            )

    def _settle(self, mail: MailOutbox, values: dict[str, Any]) -> None:
        """End this sender's claim of `mail`: only while it is still this claim (same attempt)."""
        with Session(self.engine) as session, session.begin():
            settled = rows_matched(
                session,
                update(MailOutbox)
                .where(
                    MailOutbox.id == mail.id,
                    MailOutbox.state == MailState.SENDING,
                    MailOutbox.attempts == mail.attempts,
                )
                .values(values),
            )
        if not settled:
            log.warning(
                "a mail's claim went stale during its send and another sender took it over; "
                "it may reach its recipient twice",
                extra={"mail_id": mail.id, "outcome": values["state"]},
            )

    # ------------------------------------------------------------------ the thread

    def start(self) -> MailSender:
        """Run `send_due` every `mail_poll_s` (and on `wake()`) in a daemon thread."""
        if self._thread is not None:
            return self
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="mail-sender", daemon=True)
        self._thread.start()
        log.info(
            "mail sender started",
            extra={"host": self.host, "port": self.settings.mail_port, "starttls": self.settings.mail_starttls},
        )
        return self

    def wake(self) -> None:
        """Run a pass now: call after committing a transaction that queued mail."""
        self._wake.set()

    def stop(self, timeout_s: float = SMTP_TIMEOUT_S + 5) -> None:
        """Stop the thread after the mail it is sending, if any (a pass in progress stops there too)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stopping.is_set():
            # Cleared before the pass: a wake() during it makes the wait below return at once.
            self._wake.clear()
            try:
                self.send_due()
                if self._database_trouble.active:
                    self._database_trouble.ended(logging.INFO, "mail sender reaches the database again")
            except SQLAlchemyError as exc:
                self._database_trouble.occurred(
                    logging.WARNING, "mail sender cannot reach the database; retrying", error=str(exc)[:300]
                )
            except Exception:
                log.exception("mail sender pass failed; retrying")
            self._wake.wait(self.settings.mail_poll_s)
