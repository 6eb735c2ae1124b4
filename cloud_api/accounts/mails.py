"""The mails people get: address verification, password reset, invitation. Each is queued in
the caller's transaction (cloud_api/mail), in the language the mail is written for."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from sqlalchemy.orm import Session

from cloud_api.accounts.links import LIFETIME
from cloud_api.accounts.models import LinkPurpose, Person
from cloud_api.mail.outbox import queue_mail
from cloud_api.refusals import N_
from cloud_api.web.i18n import Language


@dataclass(frozen=True)
class Mailer:
    base_url: str  # the cabinets' public address: links in mails start with it
    language: Language

    def link(self, path: str, token: str) -> str:
        return f"{self.base_url.rstrip('/')}{path}/{quote(token, safe='')}"

    def _hours(self, purpose: str) -> int:
        return int(LIFETIME[purpose].total_seconds() // 3600)

    def _send(self, session: Session, person: Person, subject: str, lines: list[str]) -> None:
        _ = self.language.gettext
        body = "\n\n".join([_("Hello {name},").format(name=person.name), *lines, _("— kassa")])
        queue_mail(session, to=person.email, subject=subject, text=body + "\n")

    def verify_address(self, session: Session, person: Person, token: str) -> None:
        _ = self.language.gettext
        self._send(
            session,
            person,
            _(N_("Confirm your e-mail address for kassa")),
            [
                _(N_("Open this link to confirm your address and finish the registration:")),
                self.link("/verify", token),
                _(N_("The link works once, for {hours} hours. If you did not register, ignore this mail.")).format(
                    hours=self._hours(LinkPurpose.VERIFY)
                ),
            ],
        )

    def password_reset(self, session: Session, person: Person, token: str) -> None:
        _ = self.language.gettext
        self._send(
            session,
            person,
            _(N_("Reset your kassa password")),
            [
                _(N_("Open this link to choose a new password:")),
                self.link("/reset", token),
                _(
                    N_(
                        "The link works once, for {hours} hours. If you did not ask for it, ignore this mail: "
                        "your password stays as it is."
                    )
                ).format(hours=self._hours(LinkPurpose.RESET)),
            ],
        )

    def invitation(
        self, session: Session, person: Person, token: str, *, org_name: str, inviter: str, has_password: bool
    ) -> None:
        _ = self.language.gettext
        lines = [
            _(N_("{inviter} invites you to work with {organisation} in kassa.")).format(
                inviter=inviter, organisation=org_name
            ),
            _(N_("Open this link to accept:")) if has_password else _(N_("Open this link to set your password:")),
            self.link("/invite", token),
            _(N_("The link works once, for {days} days.")).format(days=self._hours(LinkPurpose.INVITE) // 24),
        ]
        self._send(session, person, _(N_("Invitation to {organisation} in kassa")).format(organisation=org_name), lines)
