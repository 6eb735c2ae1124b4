"""`make up`: the demo's stack kept running for a person to click through.

Starts the broker (production configuration), the cloud (SQLite) with its ingest worker and an
SMTP catcher, the simulated printer and scanner, and one paired agent; creates the demo
sign-ins; prints the addresses; then prints every mail the cloud sends (with its links) until
Ctrl-C. Files (logs, receipts, the database) stay in the printed directory.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.accounts.audit import Actor
from cloud_api.accounts.models import Person
from cloud_api.accounts.passwords import hash_password
from cloud_api.documents import service as documents
from cloud_api.documents.schemas import end_of_day
from cloud_api.tenancy.models import Company, LinkState, Partner, PartnerLink, Role, User
from cloud_api.tenancy.tokens import Principal
from tests.demo.scenario import Demo, DemoFailure

PASSWORD = "kassa-demo-1"
SIGN_INS = (
    ("owner@kassa.test", "the owner's cabinet (partners, licence sales)"),
    ("partner@kassa.test", "the partner's cabinet (10 sealed licences, a link request from Demo shop)"),
    ("shop@kassa.test", "the company's cabinet (Demo shop)"),
    ("both@kassa.test", "one e-mail, two cabinets: chooses at sign-in"),
)


def _person(db: Session, email: str, name: str, now: datetime) -> Person:
    person = Person(
        email=email,
        name=name,
        password_hash=hash_password(PASSWORD),
        email_verified_at=now,
        failed_signins=0,
        created_at=now,
    )
    db.add(person)
    db.flush()
    return person


def seed_people(demo: Demo) -> None:
    """The demo's people: the owner's admin, a partner with stock and a pending link request from
    the demo company, the company's admin, and one person in both a partner and a company."""
    assert demo.cloud is not None
    now = datetime.now(UTC)
    with Session(demo.cloud.engine, expire_on_commit=False) as db:
        owner_user = db.scalars(select(User).where(User.role == Role.OWNER_ADMIN).order_by(User.id)).first()
        assert owner_user is not None, "the pair step creates the owner"
        owner_user.person_id = _person(db, "owner@kassa.test", "Olga Owner", now).id
        partner = Partner(owner_id=owner_user.owner_id, name="Demo partner", created_at=now)
        db.add(partner)
        db.flush()
        partner_person = _person(db, "partner@kassa.test", "Pavel Partner", now)
        both = _person(db, "both@kassa.test", "Boris Both", now)
        shop_person = _person(db, "shop@kassa.test", "Sofia Shop", now)
        company = db.get(Company, demo.company_id)
        assert company is not None
        memberships = [
            (partner_person, Role.PARTNER_ADMIN, partner.id, None),
            (both, Role.PARTNER_MANAGER, partner.id, None),
            (shop_person, Role.COMPANY_ADMIN, None, company.id),
            (both, Role.COMPANY_ADMIN, None, company.id),
        ]
        for person, role, partner_id, company_id in memberships:
            db.add(
                User(
                    name=person.name,
                    role=role,
                    owner_id=owner_user.owner_id,
                    partner_id=partner_id,
                    company_id=company_id,
                    person_id=person.id,
                    created_at=now,
                )
            )
        owner = Principal(owner_user.id, owner_user.role, owner_user.owner_id, None, None, 0)
        documents.sell(
            db,
            Actor(owner, "owner@kassa.test"),
            partner_id=partner.id,
            quantity=10,
            valid_until=end_of_day(date.today() + timedelta(days=365)),
            note="make up",
            now=now,
        )
        open_link = db.scalar(select(PartnerLink).where(PartnerLink.open_company_id == company.id))
        if open_link is None:  # the demo shop asks the demo partner; the partner answers in the cabinet
            db.add(
                PartnerLink(
                    company_id=company.id,
                    partner_id=partner.id,
                    state=LinkState.PENDING,
                    open_company_id=company.id,
                    message="Please serve our shop",
                    requested_by=owner_user.id,
                    requested_at=now,
                )
            )
        db.commit()


def print_new_mail(demo: Demo, seen: int) -> int:
    for mail in demo.smtp.received[seen:]:
        subject = mail.message["Subject"]
        links = re.findall(r"https?://\S+", mail.text)
        print(f"  mail to {', '.join(mail.rcpt_tos)}: {subject}", flush=True)
        for link in links:
            print(f"      {link}", flush=True)
    return len(demo.smtp.received)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.demo.up", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, help="where to keep the files (default: a new temp dir)")
    args = parser.parse_args(argv)
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="kassa-up-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"kassa up: files in {workdir}")
    demo = Demo(workdir)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        for step in (demo.start_broker, demo.start_cloud, demo.start_hardware, demo.start_agent, demo.pair):
            print(f"  ok  {step()}", flush=True)
        seed_people(demo)
        _print_addresses(demo)
        seen = 0
        while True:
            seen = print_new_mail(demo, seen)
            time.sleep(0.5)
    except DemoFailure as exc:
        print(f"\nkassa up FAILED at '{exc.step}': {exc}\n{exc.logs}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal may deliver Ctrl-C twice
        print("\nkassa up: stopping")
        return 0
    finally:
        # A second Ctrl-C (or the terminal's, reaching us again) must not leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        demo.teardown()
        print("kassa up: stopped", flush=True)


def _print_addresses(demo: Demo) -> None:
    status: dict[str, Any] = demo._status()
    pos_api = status.get("components", {}).get("pos_api", {})
    print()
    print(f"  Cabinets:        {demo.cabinet_url}/signin")
    print(f"  Register a company: {demo.cabinet_url}/register")
    print(f"  API (Swagger):   {demo.cabinet_url}/docs")
    if pos_api.get("url"):
        print(f"  Terminal status: {pos_api['url'].rstrip('/')}/status")
    print(f"  Receipts:        {demo.preview_dir}")
    print(f"  Mail:            caught by the SMTP server on {demo.smtp.host}:{demo.smtp.port}; printed below")
    print()
    print(f"  Sign-ins (password {PASSWORD} for all):")
    for email, what in SIGN_INS:
        print(f"    {email:<22} {what}")
    print("\n  Ctrl-C stops everything.\n", flush=True)


if __name__ == "__main__":
    sys.exit(main())
