"""Outgoing e-mail: `queue_mail` adds a mail to the caller's transaction, `MailSender` delivers
the committed ones through the SMTP relay (docs/mail.md)."""

from cloud_api.mail.outbox import queue_mail
from cloud_api.mail.sender import MailSender

__all__ = ["MailSender", "queue_mail"]
