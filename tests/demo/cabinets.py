"""Demo step for the web cabinets: people, e-mail and licence documents through the real pages.

A mixin of `Demo` (scenario.py). The owner registers a partner and sells it sealed licences;
the partner follows the e-mailed invitation and sets a password; a company registers itself,
confirms its address and asks the partner to serve it; the partner accepts, moves two sealed
licences to it and unseals one for a buyer without a cabinet. The full checks are
tests/cloud/test_web_*.py and the browser test tests/cloud/test_cabinets_browser.py.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud_api.accounts.models import Person
from cloud_api.licences.models import Licence, LicenceState
from cloud_api.tenancy.models import Company, Partner, Role, User
from tests.support.web_client import CabinetClient

if TYPE_CHECKING:
    from tests.demo.scenario import Demo

PASSWORD = "demo-password-1"


class CabinetSteps:
    def cabinets(self: Demo) -> str:
        assert self.cloud is not None
        with Session(self.cloud.engine) as db:  # the owner's admin gets an e-mail and a password
            admin = db.scalars(select(User).where(User.role == Role.OWNER_ADMIN).order_by(User.id)).first()
            assert admin is not None
            from cloud_api.accounts.passwords import hash_password

            person = Person(
                email="owner@demo.test",
                name="Demo owner",
                password_hash=hash_password(PASSWORD),
                email_verified_at=datetime.now(UTC),
                failed_signins=0,
                created_at=datetime.now(UTC),
            )
            db.add(person)
            db.flush()
            admin.person_id = person.id
            db.commit()
        owner = CabinetClient(self.cabinet_url)
        owner.sign_in("owner@demo.test", PASSWORD)
        owner.post(
            "/owner/partners/new",
            {"partner_name": "Cabinet partner", "admin_name": "Pat Partner", "admin_email": "pat@partner.test"},
        )
        invitation = self._mailed_link("pat@partner.test", "/invite/")
        with Session(self.cloud.engine) as db:
            partner_id = db.scalar(select(Partner.id).where(Partner.name == "Cabinet partner"))
        owner.post(
            "/owner/sales/new",
            {
                "partner_id": partner_id,
                "quantity": "5",
                "valid_until": (date.today() + timedelta(days=365)).isoformat(),
            },
        )
        partner = CabinetClient(self.cabinet_url)
        partner.get(invitation)
        partner.post(invitation, {"name": "Pat Partner", "password": PASSWORD})
        partner.sign_in("pat@partner.test", PASSWORD)

        company = CabinetClient(self.cabinet_url, language="ru")
        company.get("/register")
        company.post(
            "/register",
            {"company_name": "Кафе «Ромашка»", "name": "Roma", "email": "roma@cafe.test", "password": PASSWORD},
            expect=200,
        )
        verify = self._mailed_link("roma@cafe.test", "/verify/")
        company.get(verify)
        company.post(verify)
        company.sign_in("roma@cafe.test", PASSWORD)
        company.post("/company/partner/request", {"partner_id": partner_id, "message": "Serve our café, please"})

        with Session(self.cloud.engine) as db:
            company_id = db.scalar(select(Company.id).where(Company.name == "Кафе «Ромашка»"))
            from cloud_api.tenancy.models import PartnerLink

            link_id = db.scalar(select(PartnerLink.id).where(PartnerLink.company_id == company_id))
        partner.post(f"/partner/links/{link_id}/accept")
        partner.post("/partner/documents/new/move", {"company_id": company_id, "quantity": "2"})
        unsealed = partner.post(
            "/partner/documents/new/unseal",
            {"firm_name": "ООО Покупатель", "tax_number": "7707083893", "buyer_email": "buyer@firm.test"},
            expect=200,
        )
        key = re.search(r"[0-9A-Z]{4}(?:-[0-9A-Z]{4}){3}", unsealed.text)
        with Session(self.cloud.engine) as db:
            held = db.scalar(select(func.count()).select_from(Licence).where(Licence.company_id == company_id))
            unsealed_count = db.scalar(
                select(func.count())
                .select_from(Licence)
                .where(
                    Licence.partner_id == partner_id,
                    Licence.state == LicenceState.ASSIGNED,
                    Licence.company_id.is_(None),
                )
            )
        # The company's own cabinet: a point of sale, and the two licences it now holds.
        company.post("/company/points-of-sale/new", {"name": "Кафе у вокзала", "code": "POS-STATION"})
        licences_page = company.get("/company/licences").text
        shown = len(set(re.findall(r"lic_[0-9a-f]{20}", licences_page)))
        if held != 2 or unsealed_count != 1 or key is None or shown != 2:
            raise self.failure(
                "cabinets",
                f"company holds {held} (expected 2), unsealed {unsealed_count} (expected 1), "
                f"key shown: {key is not None}, the company's licence page lists {shown} (expected 2)",
            )
        for client in (owner, partner, company):
            client.close()
        return (
            f"partner invited and signed in; 5 sealed sold; company registered in Russian and linked; "
            f"2 moved, 1 unsealed (key {key.group(0)[:4]}-…); the company added a point of sale and sees its "
            f"2 licences; cabinets at {self.cabinet_url}/signin"
        )

    def _mailed_link(self: Demo, to: str, path: str) -> str:
        """The path of the link to `path` in the newest mail to `to` (printed, as a person would click it)."""
        mails = self.smtp.wait_for(lambda received: any(to in m.rcpt_tos for m in received), timeout=30)
        mail = [m for m in mails if to in m.rcpt_tos][-1]
        found = re.search(rf"https?://[^/\s]+({re.escape(path)}[A-Za-z0-9_-]+)", mail.text)
        if found is None:
            raise self.failure("cabinets", f"no {path} link in the mail to {to}:\n{mail.text}")
        print(f"        mail to {to}: {found.group(0)}", flush=True)
        return found.group(1)
