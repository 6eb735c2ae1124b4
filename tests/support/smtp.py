"""A real SMTP server for tests (aiosmtpd) that keeps every mail it receives.

`SmtpServer` listens on 127.0.0.1 at a free port, in a thread of its own. It can be stopped and
started again on the same port (a relay that goes down and comes back), can require a login
(`credentials`) and can offer STARTTLS with a throwaway self-signed certificate (`tls=True`;
point `SSL_CERT_FILE` at `server.certificate_file` so clients trust it).

The `smtp_server` fixture yields a started plain server; cloud tests get it from
tests/cloud/conftest.py, other test directories import it into their conftest the same way.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from broker.launcher import free_port

HOST = "127.0.0.1"
LINK = re.compile(r"https?://[^\s<>\"']+")


@dataclass(frozen=True)
class ReceivedMail:
    message: EmailMessage
    mail_from: str  # the envelope's sender
    rcpt_tos: list[str]  # the envelope's recipients
    authenticated_as: str | None
    over_tls: bool

    @property
    def text(self) -> str:
        """The plain-text body (the text/plain part of a multipart mail), lines ending in "\\n" (base64
        bodies carry the canonical CRLF)."""
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None, "the mail has no text/plain part"
        return str(part.get_content()).replace("\r\n", "\n")


class _Collector:
    """aiosmtpd's handler: parses each mail and hands it to the server."""

    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        refusal = self.server.refused_recipients.get(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, _class=EmailMessage, policy=email.policy.default)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.server.add(
            ReceivedMail(
                message=message,
                mail_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                authenticated_as=login,
                over_tls=session.ssl is not None,
            )
        )
        return "250 OK"


class SmtpServer:
    def __init__(
        self, *, port: int | None = None, credentials: tuple[str, str] | None = None, tls_dir: Path | None = None
    ) -> None:
        """`credentials`: (user, password) the server requires before mail (over a plain connection
        too: tests need no TLS for it). `tls_dir`: offer STARTTLS with a certificate made there."""
        self.host = HOST
        self.port = port or free_port(HOST)
        self.credentials = credentials
        self.certificate_file: Path | None = None
        self._tls_context: ssl.SSLContext | None = None
        if tls_dir is not None:
            self.certificate_file, key_file = make_self_signed_certificate(tls_dir, HOST)
            self._tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._tls_context.load_cert_chain(self.certificate_file, key_file)
        self.received: list[ReceivedMail] = []
        # Recipient address -> the reply that refuses it, e.g. "550 5.1.1 no such mailbox".
        self.refused_recipients: dict[str, str] = {}
        self.logins_refused = 0
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    @property
    def mail_settings(self) -> dict[str, Any]:
        """The CloudSettings fields that point the cloud at this server."""
        return {"mail_host": self.host, "mail_port": self.port, "mail_starttls": self._tls_context is not None}

    def start(self) -> SmtpServer:
        assert self._controller is None, "already running"
        options: dict[str, Any] = {}
        if self.credentials is not None:
            options.update(authenticator=self._authenticate, auth_required=True, auth_require_tls=False)
        if self._tls_context is not None:
            options.update(tls_context=self._tls_context, require_starttls=True)
        # server_hostname: aiosmtpd would otherwise ask DNS for this machine's name on every start.
        self._controller = Controller(
            _Collector(self), hostname=self.host, port=self.port, server_hostname="smtp.test", **options
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def add(self, mail: ReceivedMail) -> None:
        with self._lock:
            self.received.append(mail)

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return [mail.message for mail in self.received]

    def wait_for(self, predicate: Callable[[list[ReceivedMail]], bool], timeout: float = 10.0) -> list[ReceivedMail]:
        """Poll until `predicate(received so far)` holds; return the mails. Fails after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                received = list(self.received)
            if predicate(received):
                return received
            if time.monotonic() >= deadline:
                raise AssertionError(f"the SMTP server did not get the expected mail in {timeout} s; got {received}")
            time.sleep(0.02)

    def wait_for_count(self, count: int, timeout: float = 10.0) -> list[ReceivedMail]:
        return self.wait_for(lambda received: len(received) >= count, timeout)

    def _authenticate(
        self, _server: SMTP, _session: Session, _envelope: Envelope, _mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert self.credentials is not None
        user, password = self.credentials
        if isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            user.encode(),
            password.encode(),
        ):
            return AuthResult(success=True, auth_data=auth_data)
        with self._lock:
            self.logins_refused += 1
        return AuthResult(success=False, handled=False)


def first_link(mail: ReceivedMail | EmailMessage) -> str:
    """The first http(s) link in a mail's plain-text body."""
    message = mail.message if isinstance(mail, ReceivedMail) else mail
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "the mail has no text/plain part"
    found = LINK.search(part.get_content())
    assert found is not None, "the mail's text holds no http(s) link"
    return found.group(0)


def make_self_signed_certificate(directory: Path, host: str) -> tuple[Path, Path]:
    """A throwaway certificate for `host` (its own CA): returns (certificate, key) PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    certificate_file, key_file = directory / "smtp.crt", directory / "smtp.key"
    certificate_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return certificate_file, key_file


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A started SMTP server on 127.0.0.1 (no login, no TLS) that keeps what it receives."""
    with SmtpServer() as server:
        yield server
