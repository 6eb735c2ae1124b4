"""The account forms' fields, checked by pydantic (the pages and the JSON API use the same)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

NAME_MAX = 200


class _Form(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SignInForm(_Form):
    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=1024)


class RegisterCompanyForm(_Form):
    company_name: str = Field(min_length=1, max_length=NAME_MAX)
    name: str = Field(min_length=1, max_length=NAME_MAX)
    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=1024)


class EmailForm(_Form):
    email: str = Field(min_length=1, max_length=254)


class NewPasswordForm(_Form):
    password: str = Field(min_length=1, max_length=1024)


class AcceptInvitationForm(_Form):
    name: str | None = Field(None, max_length=NAME_MAX)
    password: str | None = Field(None, max_length=1024)


class InviteForm(_Form):
    email: str = Field(min_length=1, max_length=254)
    name: str = Field(min_length=1, max_length=NAME_MAX)
    grade: str = Field(pattern="^(admin|manager|viewer)$")


class RegisterPartnerForm(_Form):
    partner_name: str = Field(min_length=1, max_length=NAME_MAX)
    admin_name: str = Field(min_length=1, max_length=NAME_MAX)
    admin_email: str = Field(min_length=1, max_length=254)
