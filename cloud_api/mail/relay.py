"""One SMTP session with the relay, for `MailSender`: connect, STARTTLS, login, send.

Failures come out as two exceptions: `RelayUnavailable` (no mail can go now; it says what the
operator should check) and `MailRefused` (the relay refused this one mail). Their texts never
hold the password: the relay's replies are scrubbed of it, and a refused login keeps only the
reply code (some relays echo what they were sent).
"""

from __future__ import annotations

import base64
import smtplib
import ssl
from email.message import EmailMessage

from cloud_api.mail.models import LAST_ERROR_MAX
from cloud_api.settings import CloudSettings

SMTP_TIMEOUT_S = 30.0


class RelayUnavailable(Exception):
    """No mail can go through the relay now (unreachable, TLS or login refused, connection lost)."""

    def __init__(self, error: str, check: str) -> None:
        super().__init__(error)
        self.error = error
        self.check = check  # what the operator should look at


class MailRefused(Exception):
    """The relay refused this one mail; `permanent` for a 5xx reply (retrying cannot help)."""

    def __init__(self, error: str, permanent: bool) -> None:
        super().__init__(error)
        self.error = error
        self.permanent = permanent


class Relay:
    """One SMTP connection, opened for the first mail of a pass and reused for the others."""

    def __init__(self, settings: CloudSettings) -> None:
        self.settings = settings
        self._secrets = secret_forms(settings)
        self.smtp: smtplib.SMTP | None = None
        self.unavailable = False

    def send(self, message: EmailMessage, envelope_from: str, to: str) -> None:
        if self.smtp is None:
            self.smtp = self._connect()
        try:
            self.smtp.send_message(message, from_addr=envelope_from, to_addrs=[to])
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            raise MailRefused(self._reply("recipient refused", code, reply), permanent=code >= 500) from None
        except smtplib.SMTPDataError as exc:
            raise MailRefused(
                self._reply("mail refused", exc.smtp_code, exc.smtp_error), exc.smtp_code >= 500
            ) from None
        except smtplib.SMTPSenderRefused as exc:
            self.unavailable = True
            raise RelayUnavailable(
                self._reply("sender refused", exc.smtp_code, exc.smtp_error),
                "KASSA_CLOUD_MAIL_FROM (an address the relay accepts), and whether the relay wants "
                "STARTTLS or a login first",
            ) from None
        except (OSError, smtplib.SMTPException) as exc:  # the connection broke; SMTPException is an OSError
            self.close()
            self.unavailable = True
            raise RelayUnavailable(
                self._error("connection lost while sending", exc), "the relay's log, and the network to it"
            ) from None

    def _connect(self) -> smtplib.SMTP:
        host, port = self.settings.mail_host or "", self.settings.mail_port
        self.unavailable = True  # until the session is ready
        try:
            smtp = smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT_S)
        except (OSError, smtplib.SMTPException) as exc:
            raise RelayUnavailable(
                self._error("cannot connect", exc),
                "KASSA_CLOUD_MAIL_HOST and KASSA_CLOUD_MAIL_PORT, and that the relay is up and reachable",
            ) from None
        try:
            if self.settings.mail_starttls:
                self._starttls(smtp)
            if self.settings.mail_username and self.settings.mail_password is not None:
                self._login(smtp, self.settings.mail_username, self.settings.mail_password.get_secret_value())
        except BaseException:
            close_quietly(smtp)
            raise
        self.unavailable = False
        return smtp

    def _starttls(self, smtp: smtplib.SMTP) -> None:
        try:
            smtp.starttls(context=ssl.create_default_context())
        except smtplib.SMTPNotSupportedError:
            raise RelayUnavailable(
                "the relay does not offer STARTTLS", "KASSA_CLOUD_MAIL_STARTTLS and KASSA_CLOUD_MAIL_PORT"
            ) from None
        except ssl.SSLError as exc:
            raise RelayUnavailable(
                self._error("TLS failed", exc),
                "the relay's certificate: it must match KASSA_CLOUD_MAIL_HOST and be trusted by the system's CAs "
                "(or SSL_CERT_FILE)",
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise RelayUnavailable(self._error("STARTTLS failed", exc), "the relay's log") from None

    def _login(self, smtp: smtplib.SMTP, username: str, password: str) -> None:
        try:
            smtp.login(username, password)
        except smtplib.SMTPAuthenticationError as exc:
            # The relay's words are left out: some echo what they were sent.
            raise RelayUnavailable(
                f"login refused ({exc.smtp_code})", "KASSA_CLOUD_MAIL_USERNAME and KASSA_CLOUD_MAIL_PASSWORD"
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise RelayUnavailable(
                "the relay offers no login on this connection",
                "KASSA_CLOUD_MAIL_STARTTLS (relays offer login after STARTTLS), or unset KASSA_CLOUD_MAIL_USERNAME",
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise RelayUnavailable(
                self._error("login failed", exc), "KASSA_CLOUD_MAIL_USERNAME and KASSA_CLOUD_MAIL_PASSWORD"
            ) from None

    def _reply(self, what: str, code: int, reply: bytes | str) -> str:
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        return self.scrubbed(f"{what}: {code} {' '.join(text.split())}")[:LAST_ERROR_MAX]

    def _error(self, what: str, exc: BaseException) -> str:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        return self.scrubbed(f"{what}: {detail}")[:LAST_ERROR_MAX]

    def scrubbed(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def close(self) -> None:
        if self.smtp is not None:
            close_quietly(self.smtp)
            self.smtp = None


def close_quietly(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()


def secret_forms(settings: CloudSettings) -> list[str]:
    """The password as it may appear in a relay's reply: itself and as AUTH PLAIN / LOGIN send it."""
    if settings.mail_password is None or not settings.mail_password.get_secret_value():
        return []
    password = settings.mail_password.get_secret_value()
    username = settings.mail_username or ""
    plain = f"\0{username}\0{password}".encode()
    return [password, base64.b64encode(plain).decode(), base64.b64encode(password.encode()).decode()]
