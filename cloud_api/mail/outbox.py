"""Queueing a mail: a row in the caller's transaction, sent only once that transaction commits.

A handler that creates an invitation and its mail commits both or neither: there is no mail
about an invitation that was rolled back, and no invitation whose mail was lost. After the
commit the handler may call `app.state.mail_sender.wake()` so the mail leaves at once instead
of at the sender's next poll.

The recipient and subject become headers: they are checked here, so no value can add a header
(a line break in a subject would let the caller's input inject `Bcc:`).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from cloud_api.mail.models import SUBJECT_MAX, MailOutbox, MailState

# Light on purpose: one plain ASCII address (no display name, no list, no quoting), which the
# relay judges in full. Internationalised addresses would need SMTPUTF8 at every relay on the way.
ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")
ADDRESS_MAX = 254
# Characters that end a header line somewhere: CR and LF for SMTP, the others for Python's str.splitlines.
LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MESSAGE_ID_DOMAIN = "kassa"


def queue_mail(session: Session, *, to: str, subject: str, text: str, html: str | None = None) -> MailOutbox:
    """Add a mail to `session`'s transaction (flushed, not committed) and return its row.

    `text` is the plain-text body every mail has; `html`, when given, is sent as its
    alternative. Raises ValueError for an address or subject that cannot be a header."""
    to_address = checked_address(to)
    checked_subject(subject)
    now = datetime.now(UTC)
    mail = MailOutbox(
        message_id=new_message_id(),
        to_address=to_address,
        subject=subject,
        body_text=text,
        body_html=html,
        created_at=now,
        state=MailState.QUEUED,
        attempts=0,
        next_attempt_at=now,
    )
    session.add(mail)
    session.flush()
    return mail


def new_message_id() -> str:
    return f"<{uuid.uuid4().hex}@{MESSAGE_ID_DOMAIN}>"


def checked_address(address: str) -> str:
    if LINE_BREAKS.search(address) or CONTROL.search(address):
        raise ValueError("the recipient address contains a line break or control character; give one plain address")
    address = address.strip()
    if len(address) > ADDRESS_MAX or not ADDRESS.match(address):
        raise ValueError(
            f"{address[:80]!r} is not one plain e-mail address like name@example.com "
            "(no display name, no list, ASCII only)"
        )
    return address


def checked_subject(subject: str) -> None:
    if LINE_BREAKS.search(subject) or CONTROL.search(subject):
        raise ValueError("the subject contains a line break or control character; a subject is one line of text")
    if not subject.strip():
        raise ValueError("the subject is empty; every mail needs one")
    if len(subject) > SUBJECT_MAX:
        raise ValueError(f"the subject is {len(subject)} characters long; at most {SUBJECT_MAX} fit")
