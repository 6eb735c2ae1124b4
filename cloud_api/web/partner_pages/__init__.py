"""The partner's cabinet: its licence stock, its documents (move sealed licences to a client
company, unseal one for a buyer without a cabinet), link requests and client companies.

A partner sees its own licences and, of a company, only the name and the device id a licence
of its own is bound to: never the company's sales, cashiers or other devices. Every rule is
the services' (documents.service, tenancy.link_service); these pages only read and call them.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from cloud_api.web.context import PartnerDep
from cloud_api.web.pages import redirect
from cloud_api.web.partner_pages import documents, licences, links

router = APIRouter(include_in_schema=False)


@router.get("/partner")
def partner_home(member: PartnerDep) -> Response:
    return redirect("/partner/licences", member)


for section in (licences, documents, links):
    router.include_router(section.router)
