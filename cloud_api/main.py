"""``kassa-cloud``: run the cloud service.

kassa-cloud serve  [--host H] [--port P] [--database-url URL]
kassa-cloud worker [--mqtt-host H] [--mqtt-port P] [--worker-id ID] [--no-pushes] [--database-url URL]
kassa-cloud keys generate [--key-file F] [--key-id ID]
kassa-cloud provisioning-qr [--point-of-sale P] [--language L] [--broker H:P] ... --out code.png
kassa-cloud owner create --name N [--admin-name A] [--admin-email E] [--database-url URL]
kassa-cloud pki crl [--out FILE] | pki revoke --certificate FILE [--reason R] [--out FILE]
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from sqlalchemy import Engine

from broker.logs import setup_logging
from cloud_api.db import make_engine
from cloud_api.refusals import Refused
from cloud_api.settings import CloudSettings
from cloud_api.startup_checks import EX_UNAVAILABLE, Unavailable, check_broker, check_database


def build_parser() -> argparse.ArgumentParser:
    # Accepted before or after the command; SUPPRESS keeps a subcommand from erasing a value
    # given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--database-url", default=argparse.SUPPRESS, help="SQLAlchemy URL (env KASSA_CLOUD_DATABASE_URL)"
    )
    common.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=argparse.SUPPRESS,
        help="log lines as text (default) or JSON (env KASSA_CLOUD_LOG_FORMAT)",
    )
    parser = argparse.ArgumentParser(prog="kassa-cloud", description="kassa cloud service.", parents=[common])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the admin HTTP API", parents=[common])
    serve.add_argument("--host", dest="http_host", help="listen address (env KASSA_CLOUD_HTTP_HOST)")
    serve.add_argument("--port", dest="http_port", type=int, help="listen port (env KASSA_CLOUD_HTTP_PORT)")
    worker = sub.add_parser(
        "worker", parents=[common], help="apply device messages from the broker (any number may run)"
    )
    worker.add_argument("--mqtt-host", help="broker address (env KASSA_CLOUD_MQTT_HOST)")
    worker.add_argument("--mqtt-port", type=int, help="broker port (env KASSA_CLOUD_MQTT_PORT)")
    worker.add_argument("--worker-id", help="stable worker id, default the host name (env KASSA_CLOUD_WORKER_ID)")
    worker.add_argument(
        "--no-pushes",
        dest="push_enabled",
        action="store_const",
        const=False,
        help="do not run the push publisher in this worker (env KASSA_CLOUD_PUSH_ENABLED=false)",
    )
    key_options = argparse.ArgumentParser(add_help=False)
    key_options.add_argument(
        "--key-file", dest="signing_key_file", help="private key file (env KASSA_CLOUD_SIGNING_KEY_FILE)"
    )
    key_options.add_argument("--key-id", dest="signing_key_id", help="key id (env KASSA_CLOUD_SIGNING_KEY_ID)")
    keys = sub.add_parser("keys", parents=[key_options], help="the cloud signing key")
    keys.add_argument("action", choices=["generate", "show"])
    qr = sub.add_parser(
        "provisioning-qr", parents=[key_options], help="make a signed configuration QR code for terminals"
    )
    qr.add_argument("--point-of-sale")
    qr.add_argument("--language")
    qr.add_argument("--scanner", help="name of the terminal's scanner to use for sales")
    qr.add_argument("--room", dest="rooms", action="append", help="a room / area served (repeatable)")
    qr.add_argument("--broker", help="broker HOST:PORT the terminal connects to")
    qr.add_argument("--valid-days", type=float, default=7.0, help="the code stops working after this (default 7)")
    qr.add_argument("--out", required=True, help="PNG file to write")
    owner = sub.add_parser("owner", parents=[common], help="bootstrap: register the owner and its first admin")
    owner.add_argument("action", choices=["create"])
    owner.add_argument("--name", dest="owner_name", required=True, help="the owner's name")
    owner.add_argument("--admin-name", help="name of the owner_admin user (default: '<name> admin')")
    owner.add_argument(
        "--admin-email",
        help="the admin's e-mail: the admin signs in to the owner's cabinet after setting a password through the "
        "link printed (and mailed when mail is set up)",
    )
    pki = sub.add_parser("pki", parents=[common], help="the device CA's revocation list (CRL)")
    pki.add_argument(
        "action", choices=["crl", "revoke"], help="crl: print the newest CRL; revoke: add a certificate made elsewhere"
    )
    pki.add_argument("--certificate", help="revoke: the device certificate (PEM) to revoke")
    pki.add_argument("--reason", help="revoke: why, for the audit")
    pki.add_argument("--out", help="write the CRL to this file instead of printing it (atomic, 0644)")
    return parser


SETTINGS_KEYS = set(CloudSettings.model_fields)


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    command = args.pop("command")
    settings = CloudSettings(
        **{key: value for key, value in args.items() if value is not None and key in SETTINGS_KEYS}
    )
    setup_logging(settings.log_level, settings.log_format)
    if command in ("keys", "provisioning-qr"):
        from cloud_api.keys_cli import run_keys_command

        return run_keys_command(command, settings, args)
    engine = make_engine(settings.database_url)
    if command in ("serve", "worker"):
        try:
            check_database(engine)
            if command == "worker":
                check_broker(settings.mqtt_host, settings.mqtt_port)
        except Unavailable as exc:
            engine.dispose()
            print(f"kassa-cloud {command}: {exc}", file=sys.stderr)
            return EX_UNAVAILABLE
    if command == "owner":
        return create_owner_command(
            engine, args["owner_name"], args.get("admin_name"), args.get("admin_email"), settings
        )
    if command == "pki":
        from cloud_api.pki_cli import run_pki_command

        return run_pki_command(settings, engine, args)
    if command == "serve":
        import uvicorn  # only the HTTP service needs it

        from cloud_api import schema
        from cloud_api.app import create_app

        schema.upgrade(engine)

        # log_config=None: uvicorn's records go through kassa's handler and format, like every other.
        uvicorn.run(
            create_app(settings, engine),
            host=settings.http_host,
            port=settings.http_port,
            log_level=settings.log_level,
            log_config=None,
        )
        return 0
    return run_worker(settings, engine)


def create_owner_command(
    engine: Engine, name: str, admin_name: str | None, admin_email: str | None, settings: CloudSettings
) -> int:
    """Migrate the database, register an owner with an owner_admin user, print its token once;
    with an e-mail, the admin is also a person who sets a password through the printed link."""
    from pydantic import TypeAdapter, ValidationError
    from sqlalchemy.orm import Session

    from cloud_api import schema
    from cloud_api.api.schemas import Name
    from cloud_api.tenancy.tokens import create_owner

    try:
        name = TypeAdapter(Name).validate_python(name)
        admin_name = TypeAdapter(Name).validate_python(admin_name) if admin_name else None
    except ValidationError as exc:
        print(f"kassa-cloud owner create: invalid name: {exc.errors()[0]['msg']}", file=sys.stderr)
        return 2
    try:
        schema.upgrade(engine)
        with Session(engine, expire_on_commit=False) as session:
            owner, admin, token = create_owner(session, name, admin_name)
            link = _owner_admin_person(session, admin, admin_email, settings) if admin_email else None
    except Refused as exc:
        print(f"kassa-cloud owner create: {exc.message}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(f"owner {owner.id} ({owner.name}); owner_admin user {admin.id} ({admin.name})")
    print("API token (shown only now; store it safely):")
    print(token)
    if link:
        print(f"{admin_email} sets a password for the owner's cabinet here (valid 7 days, once):")
        print(link)
    return 0


def _owner_admin_person(session: Any, admin: Any, email: str, settings: CloudSettings) -> str:
    """Make the owner's first admin a person with `email`; returns the link that sets the password."""
    from datetime import UTC, datetime

    from cloud_api.accounts import links
    from cloud_api.accounts.mails import Mailer
    from cloud_api.accounts.models import LinkPurpose, Person
    from cloud_api.accounts.people import normalise_email, person_by_email
    from cloud_api.web.i18n import cabinet_language

    now = datetime.now(UTC)
    address = normalise_email(email)
    person = person_by_email(session, address) or Person(
        email=address, name=admin.name, password_hash=None, failed_signins=0, created_at=now
    )
    session.add(person)
    session.flush()
    admin.person_id = person.id
    token = links.new_link(session, purpose=LinkPurpose.INVITE, person_id=person.id, user_id=admin.id, now=now)
    mailer = Mailer(settings.public_url, cabinet_language("en"))
    mailer.invitation(session, person, token, org_name=admin.name, inviter="kassa-cloud", has_password=False)
    session.commit()
    return mailer.link("/invite", token)


def run_worker(settings: CloudSettings, engine: Engine) -> int:
    """Run one ingest worker until SIGTERM or SIGINT, then stop it cleanly (exit 0)."""
    from cloud_api import schema
    from cloud_api.ingest.client import TlsFiles
    from cloud_api.ingest.worker import IngestWorker

    schema.upgrade(engine)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    tls = None
    if settings.mqtt_ca_file is not None:
        tls = TlsFiles(
            str(settings.mqtt_ca_file),
            str(settings.mqtt_cert_file) if settings.mqtt_cert_file else None,
            str(settings.mqtt_key_file) if settings.mqtt_key_file else None,
        )
    worker = IngestWorker(
        engine,
        settings.mqtt_host,
        settings.mqtt_port,
        settings.worker_id,
        username=settings.mqtt_username,
        password=password,
        tls=tls,
    ).start()
    publisher = None
    if settings.push_enabled:
        from cloud_api.pushes.config import publisher_from_settings

        publisher = publisher_from_settings(settings, engine).start()
    from cloud_api.licences.policy import policy_from_settings, use_policy
    from cloud_api.licences.sweeper import LicenceSweeper

    licence_policy = policy_from_settings(settings)
    use_policy(licence_policy)  # the ingest's up/licence applier signs leases with it
    sweeper = LicenceSweeper(engine, licence_policy, every_s=settings.licence_sweep_s).start()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        # The ingest first: it finishes the batch in hand and logs its counters at once, even
        # when the publisher is slow to stop (e.g. its lease write waiting for SQLite's lock).
        worker.stop()
        sweeper.stop()
        if publisher is not None:
            publisher.stop()
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
