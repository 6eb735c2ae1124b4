"""Licence documents: every sale, move or unsealing of licences is a numbered, dated document.

The seed's partner works through documents ("Documents -> new document -> Unseal to self"):
the owner sells sealed licences to a partner, a partner moves sealed licences to a linked
company or unseals one for itself with the buyer's firm, tax number and e-mail. A document
lists its licences (one line each); the licence book keeps their state.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cloud_api.accounts.models import EMAIL
from cloud_api.db import Base
from cloud_api.licences.models import LICENCE_ID


class DocumentKind:
    SALE = "sale"  # the owner sells sealed licences to a partner
    MOVE = "move"  # a partner hands sealed licences to a linked company
    UNSEAL = "unseal"  # a partner unseals a licence for itself (a buyer without a cabinet)

    ALL = (SALE, MOVE, UNSEAL)


NUMBER_PREFIX = {DocumentKind.SALE: "S", DocumentKind.MOVE: "M", DocumentKind.UNSEAL: "U"}


class LicenceDocument(Base):
    __tablename__ = "licence_documents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)  # "M-000042": kind prefix + id
    kind: Mapped[str] = mapped_column(String(8))
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id"))
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    valid_until: Mapped[datetime | None]  # sales: the licences' expiry
    firm_name: Mapped[str | None] = mapped_column(String(200))  # unsealing: who bought it
    tax_number: Mapped[str | None] = mapped_column(String(20))  # unsealing: the buyer's INN
    buyer_email: Mapped[str | None] = mapped_column(EMAIL)
    note: Mapped[str | None] = mapped_column(String(500))
    created_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # The form (or API call) that made it: sending the same one again returns this document
    # instead of making a second one (a reloaded page, a retried request).
    request_id: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(254))  # the person's e-mail (or the token) at the time
    created_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("created_by_user_id", "request_id", name="uq_licence_documents_request"),
        Index("ix_licence_documents_partner_created", "partner_id", "created_at"),
        Index("ix_licence_documents_partner_id_id", "partner_id", "id"),
        Index("ix_licence_documents_owner_created", "owner_id", "created_at"),
    )


class LicenceDocumentLine(Base):
    __tablename__ = "licence_document_lines"

    document_id: Mapped[int] = mapped_column(ForeignKey("licence_documents.id"), primary_key=True)
    licence_id: Mapped[str] = mapped_column(LICENCE_ID, ForeignKey("licences.id"), primary_key=True, index=True)
