"""The mail outbox: every mail the cloud sends is a row here first.

It shares `cloud_api.db.Base`, so one metadata describes the whole schema (Alembic compares
the migrations against it).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cloud_api.db import Base

ADDRESS = String(254)  # the longest path SMTP allows (RFC 5321)
SUBJECT_MAX = 300
LAST_ERROR_MAX = 300


class MailState:
    QUEUED = "queued"  # waiting for `next_attempt_at`
    SENDING = "sending"  # claimed by one sender since `claimed_at`
    SENT = "sent"  # the relay accepted it
    FAILED = "failed"  # given up: see `last_error`

    ALL = (QUEUED, SENDING, SENT, FAILED)


class MailOutbox(Base):
    """One mail to one recipient. `message_id` is made when the mail is queued, so every send
    of it (a retry, a resend after a crash) carries the same Message-ID and the recipient's
    mail system can tell a duplicate. `attempts` counts claims: a send that started."""

    __tablename__ = "mail_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(100), unique=True)
    to_address: Mapped[str] = mapped_column(ADDRESS)
    subject: Mapped[str] = mapped_column(String(SUBJECT_MAX))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime]
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(LAST_ERROR_MAX))

    __table_args__ = (
        Index("ix_mail_outbox_state_next_attempt", "state", "next_attempt_at"),
        CheckConstraint("state IN ('queued', 'sending', 'sent', 'failed')", name="ck_mail_outbox_state"),
    )
