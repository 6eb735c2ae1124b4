"""The mail outbox and its sender against a real SMTP server (aiosmtpd, tests/support/smtp.py):
a mail leaves only when its transaction commits, exactly once however many senders race,
retries with backoff while the relay is down, and never shows the relay password in a log."""

from __future__ import annotations

import base64
import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from broker.logs import JsonFormatter, TextFormatter
from cloud_api.app import create_app
from cloud_api.db import make_engine, utc
from cloud_api.mail import MailSender, queue_mail
from cloud_api.mail.models import MailOutbox, MailState
from cloud_api.mail.sender import STALE_CLAIM, retry_delay_s
from cloud_api.settings import CloudSettings
from tests.support.smtp import SmtpServer, first_link

FROM = "kassa <noreply@kassa.test>"


def mail_settings(server: SmtpServer, **more: Any) -> CloudSettings:
    return CloudSettings(**{**server.mail_settings, "mail_from": FROM, **more})


def queue(engine: Engine, to: str = "anna@example.com", subject: str = "Проверка", **more: Any) -> MailOutbox:
    with Session(engine, expire_on_commit=False) as session, session.begin():
        return queue_mail(session, to=to, subject=subject, text=more.pop("text", "Текст письма.\n"), **more)


def row(engine: Engine, mail_id: int) -> MailOutbox:
    with Session(engine) as session:
        mail = session.get(MailOutbox, mail_id)
        assert mail is not None
        session.expunge(mail)
        return mail


def test_a_committed_mail_is_delivered_once_with_its_headers(engine: Engine, smtp_server: SmtpServer) -> None:
    text = "Здравствуйте, Анна!\nПодтвердите адрес: https://kassa.test/verify/Xy-12?lang=ru\nСпасибо.\n"
    mail = queue(engine, subject="Подтвердите адрес — kassa", text=text, html="<p>Здравствуйте, Анна!</p>")
    sender = MailSender(engine, mail_settings(smtp_server))

    assert sender.send_due() == 1
    assert sender.send_due() == 0  # nothing left: no second copy
    [received] = smtp_server.received
    message = received.message
    assert message["From"] == FROM
    assert message["To"] == "anna@example.com"
    assert message["Subject"] == "Подтвердите адрес — kassa"
    assert message["Message-ID"] == mail.message_id
    assert message["Message-ID"].startswith("<") and message["Message-ID"].endswith("@kassa>")
    assert message["Date"] is not None
    assert (received.mail_from, received.rcpt_tos) == ("noreply@kassa.test", ["anna@example.com"])
    assert received.text == text
    html = message.get_body(preferencelist=("html",))
    assert html is not None and html.get_content().rstrip() == "<p>Здравствуйте, Анна!</p>"
    assert first_link(received) == "https://kassa.test/verify/Xy-12?lang=ru"

    sent = row(engine, mail.id)
    assert (sent.state, sent.attempts, sent.last_error) == (MailState.SENT, 1, None)
    assert sent.sent_at is not None


def test_a_rolled_back_transaction_sends_nothing(engine: Engine, smtp_server: SmtpServer) -> None:
    with Session(engine) as session:
        queue_mail(session, to="anna@example.com", subject="Приглашение", text="Вас пригласили.")
        session.rollback()

    assert MailSender(engine, mail_settings(smtp_server)).send_due() == 0
    with Session(engine) as session:
        assert session.scalars(select(MailOutbox)).all() == []
    assert smtp_server.received == []


def test_racing_senders_deliver_each_mail_exactly_once(
    database_url: str, engine: Engine, smtp_server: SmtpServer
) -> None:
    queued = {queue(engine, to=f"user{n}@example.com").message_id for n in range(30)}
    # Two engines: two cloud processes with their own connections.
    engines = [make_engine(database_url), make_engine(database_url)]
    senders = [MailSender(other, mail_settings(smtp_server)) for other in engines]
    together = threading.Barrier(len(senders))
    counts: list[int] = []
    errors: list[BaseException] = []

    def run(sender: MailSender) -> None:
        try:
            together.wait()
            counts.append(sender.send_due())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(sender,)) for sender in senders]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for other in engines:
            other.dispose()

    assert errors == []
    assert sum(counts) == 30
    delivered = [message["Message-ID"] for message in smtp_server.messages]
    assert sorted(delivered) == sorted(queued)  # each once, none missing
    with Session(engine) as session:
        assert set(session.scalars(select(MailOutbox.state))) == {MailState.SENT}
        assert set(session.scalars(select(MailOutbox.attempts))) == {1}


def test_a_relay_that_is_down_is_retried_with_backoff_until_it_answers(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    relay = SmtpServer()  # a free port nothing listens on yet
    mail = queue(engine)
    sender = MailSender(engine, mail_settings(relay))
    t0 = datetime.now(UTC)

    with caplog.at_level(logging.INFO, logger="cloud_api.mail"):
        assert sender.send_due(now=t0) == 0
        waiting = row(engine, mail.id)
        assert (waiting.state, waiting.attempts) == (MailState.QUEUED, 1)
        assert utc(waiting.next_attempt_at) == t0 + timedelta(seconds=30)
        assert waiting.last_error is not None and waiting.last_error.startswith("cannot connect")

        assert sender.send_due(now=t0 + timedelta(seconds=29)) == 0  # not due yet: no attempt
        assert row(engine, mail.id).attempts == 1
        assert sender.send_due(now=t0 + timedelta(seconds=30)) == 0
        waiting = row(engine, mail.id)
        assert waiting.attempts == 2
        assert utc(waiting.next_attempt_at) == t0 + timedelta(seconds=30 + 60)

        with relay:
            assert sender.send_due(now=t0 + timedelta(seconds=90)) == 1
            [received] = relay.received
    assert received.message["Message-ID"] == mail.message_id
    sent = row(engine, mail.id)
    assert (sent.state, sent.attempts, sent.last_error) == (MailState.SENT, 3, None)

    [unavailable] = [r for r in caplog.records if r.getMessage().startswith("mail relay unavailable")]
    assert unavailable.levelno == logging.WARNING
    assert "KASSA_CLOUD_MAIL_HOST" in unavailable.check  # type: ignore[attr-defined]
    assert any(r.getMessage() == "mail relay reachable again" for r in caplog.records)


def test_retry_delays_double_from_30_s_up_to_an_hour() -> None:
    assert [retry_delay_s(n) for n in range(1, 10)] == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]


def test_a_mail_fails_after_the_last_attempt(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    relay = SmtpServer()  # never started
    mail = queue(engine)
    sender = MailSender(engine, mail_settings(relay, mail_max_attempts=2))
    t0 = datetime.now(UTC)

    with caplog.at_level(logging.WARNING, logger="cloud_api.mail"):
        sender.send_due(now=t0)
        sender.send_due(now=t0 + timedelta(seconds=30))
    failed = row(engine, mail.id)
    assert (failed.state, failed.attempts) == (MailState.FAILED, 2)
    assert failed.last_error is not None and failed.last_error.startswith("cannot connect")
    assert any(r.getMessage().startswith("mail given up") for r in caplog.records)

    sender.send_due(now=t0 + timedelta(days=1))
    assert row(engine, mail.id).attempts == 2  # a failed mail is left alone


def test_a_refusing_relay_fails_a_mail_for_good_on_5xx_and_retries_it_on_4xx(
    engine: Engine, smtp_server: SmtpServer
) -> None:
    smtp_server.refused_recipients = {
        "gone@example.com": "550 5.1.1 no such mailbox",
        "full@example.com": "452 4.2.2 mailbox full",
    }
    gone, full, fine = (queue(engine, to=f"{name}@example.com") for name in ("gone", "full", "fine"))
    t0 = datetime.now(UTC)

    assert MailSender(engine, mail_settings(smtp_server)).send_due(now=t0) == 1  # the others do not stop it

    assert [m["To"] for m in smtp_server.messages] == ["fine@example.com"]
    refused = row(engine, gone.id)
    assert (refused.state, refused.last_error) == (MailState.FAILED, "recipient refused: 550 5.1.1 no such mailbox")
    later = row(engine, full.id)
    assert (later.state, later.attempts) == (MailState.QUEUED, 1)
    assert utc(later.next_attempt_at) == t0 + timedelta(seconds=30)
    assert row(engine, fine.id).state == MailState.SENT


def test_a_mail_left_sending_by_a_crash_is_sent_again_with_the_same_message_id(
    engine: Engine, smtp_server: SmtpServer
) -> None:
    mail = queue(engine)
    crashed_at = datetime.now(UTC)
    with Session(engine) as session, session.begin():  # a sender claimed it, then its process died
        session.execute(
            update(MailOutbox)
            .where(MailOutbox.id == mail.id)
            .values(state=MailState.SENDING, claimed_at=crashed_at, attempts=1)
        )
    sender = MailSender(engine, mail_settings(smtp_server))

    assert sender.send_due(now=crashed_at + timedelta(minutes=1)) == 0  # may still be sending
    assert row(engine, mail.id).state == MailState.SENDING
    assert sender.send_due(now=crashed_at + STALE_CLAIM + timedelta(seconds=1)) == 1

    [received] = smtp_server.received
    assert received.message["Message-ID"] == mail.message_id
    resent = row(engine, mail.id)
    assert (resent.state, resent.attempts) == (MailState.SENT, 2)


@pytest.mark.parametrize(
    ("to", "subject"),
    [
        ("anna@example.com", "Привет\r\nBcc: all@example.com"),
        ("anna@example.com", "Привет\nBcc: all@example.com"),
        ("anna@example.com", "Привет\u2028Bcc: all@example.com"),
        ("anna@example.com\r\nBcc: all@example.com", "Привет"),
        ("anna@example.com, all@example.com", "Привет"),
        ("Anna <anna@example.com>", "Привет"),
        ("anna@ex@ample.com", "Привет"),
        ("anna.example.com", "Привет"),
        ("anna@example.com", "   "),
    ],
)
def test_addresses_and_subjects_that_could_add_a_header_are_refused(to: str, subject: str) -> None:
    with Session() as session:  # refused before any database is needed
        with pytest.raises(ValueError):
            queue_mail(session, to=to, subject=subject, text="x")
        assert list(session.new) == []


def test_credentials_smtp_login_cannot_send_are_refused_at_start(engine: Engine, smtp_server: SmtpServer) -> None:
    with pytest.raises(ValueError, match="must be ASCII"):
        MailSender(engine, mail_settings(smtp_server, mail_username="kassa", mail_password="пароль"))
    with pytest.raises(ValueError, match="without KASSA_CLOUD_MAIL_PASSWORD"):
        MailSender(engine, mail_settings(smtp_server, mail_username="kassa"))


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # aiosmtpd; fine on loopback
def test_the_relay_password_never_reaches_a_log(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    secret = "Pa55-word-SECRET-1"
    wrong = "Wr0ng-word-NOT-IT-2"
    mail = queue(engine)
    with SmtpServer(credentials=("kassa", secret)) as relay, caplog.at_level(logging.DEBUG):
        refused = MailSender(engine, mail_settings(relay, mail_username="kassa", mail_password=wrong))
        assert refused.send_due() == 0
        assert relay.logins_refused >= 1
        failing = row(engine, mail.id)
        assert failing.last_error == "login refused (535)"
        [warning] = [r for r in caplog.records if r.getMessage().startswith("mail relay unavailable")]
        assert "KASSA_CLOUD_MAIL_PASSWORD" in warning.check  # type: ignore[attr-defined]

        # A relay that echoes the password in a reply: it is scrubbed before it is stored or logged.
        echoed = queue(engine, to="echo@example.com")
        relay.refused_recipients = {"echo@example.com": f"550 no {secret} or {plain_b64(secret)} here"}
        accepted = MailSender(engine, mail_settings(relay, mail_username="kassa", mail_password=secret))
        assert accepted.send_due(now=datetime.now(UTC) + timedelta(minutes=1)) == 1
        [received] = relay.received
        assert received.authenticated_as == "kassa"
        assert row(engine, echoed.id).last_error == "recipient refused: 550 no *** or *** here"

    ours = [r for r in caplog.records if not r.name.startswith("mail.")]  # "mail.log" is aiosmtpd's own
    assert any(r.getMessage() == "mail sent" for r in ours)
    logged = "\n".join(formatter.format(r) for r in ours for formatter in (TextFormatter(), JsonFormatter()))
    for password in (secret, wrong):
        for form in (password, plain_b64(password), base64.b64encode(password.encode()).decode()):
            assert form not in logged


def plain_b64(password: str) -> str:
    """The password as AUTH PLAIN sends it."""
    return base64.b64encode(f"\0kassa\0{password}".encode()).decode()


def test_starttls_with_a_trusted_certificate(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    mail = queue(engine)
    with SmtpServer(tls_dir=tmp_path / "tls") as relay:
        assert relay.mail_settings["mail_starttls"] is True
        with caplog.at_level(logging.WARNING, logger="cloud_api.mail"):
            assert MailSender(engine, mail_settings(relay)).send_due() == 0  # its certificate is not trusted yet
        [warning] = [r for r in caplog.records if r.getMessage().startswith("mail relay unavailable")]
        assert warning.error.startswith("TLS failed")  # type: ignore[attr-defined]

        assert relay.certificate_file is not None
        monkeypatch.setenv("SSL_CERT_FILE", str(relay.certificate_file))
        later = datetime.now(UTC) + timedelta(minutes=1)
        assert MailSender(engine, mail_settings(relay)).send_due(now=later) == 1
        [received] = relay.received
    assert received.over_tls
    assert received.message["Message-ID"] == mail.message_id


def test_the_serve_app_runs_the_sender_and_wake_sends_at_once(
    database_url: str, engine: Engine, smtp_server: SmtpServer
) -> None:
    settings = CloudSettings(database_url=database_url, **smtp_server.mail_settings, mail_poll_s=3600)
    app = create_app(settings, engine)
    sender = app.state.mail_sender
    assert isinstance(sender, MailSender)
    assert not sender.running  # only while the app runs

    with TestClient(app):
        assert sender.running
        mail = queue(engine, to="boss@example.com", subject="Приглашение")
        sender.wake()  # what a handler does after its commit; the hour-long poll would not
        [received] = smtp_server.wait_for_count(1)
        assert received.message["Message-ID"] == mail.message_id
    assert not sender.running


def test_without_a_mail_host_the_app_has_no_sender_and_says_mail_is_off(
    database_url: str, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(CloudSettings(database_url=database_url), engine)
    assert app.state.mail_sender is None
    with caplog.at_level(logging.WARNING, logger="cloud_api.app"), TestClient(app):
        pass
    [warning] = [r for r in caplog.records if r.name == "cloud_api.app"]
    assert "KASSA_CLOUD_MAIL_HOST" in warning.getMessage()
