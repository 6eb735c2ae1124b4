"""Sales made on another device of the company, asked of the cloud for an admin's refund.

``agent.sales.cloud_lookup.lookup_sale(config, sale_id)`` answers
the sale as a dict, or None when the cloud does not know it, and raises CloudUnreachable
when the cloud cannot be asked. It blocks (HTTP): it runs in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any, NamedTuple

from pydantic import ValidationError

from agent.config import AgentConfig
from agent.sales import cloud_lookup
from agent.sales.models import SalesRefused
from broker import contract as kc

log = logging.getLogger(__name__)


class ForeignSale(NamedTuple):
    sale: dict[str, Any]  # the kc.Sale body
    device: str  # the device that made it
    refunded: dict[int, tuple[int, int]]  # refunded of it elsewhere: line -> (qty, amount)
    paid_out: dict[str, int]  # paid out by those refunds: method -> amount


async def find_foreign_sale(config: AgentConfig, sale_id: str, counted: frozenset[str] = frozenset()) -> ForeignSale:
    """The sale, its device, and what refunds made elsewhere took back of it (per line) and
    paid out (per payment method).

    ``counted``: ids of refunds the caller counts already (this terminal's own): the cloud's
    copies of them are left out, so nothing is counted twice and nothing is missed. A cloud
    that lists refunds without their payments (older than that field) or only the totals
    per line gives no payouts: they count as nothing paid out."""
    try:
        answer = await asyncio.to_thread(cloud_lookup.lookup_sale, config, uuid.UUID(sale_id))  # blocking HTTP
    except cloud_lookup.CloudUnreachable as exc:
        raise SalesRefused(
            "refund.cloud_unreachable", f"the cloud cannot be reached to find sale {sale_id}: {exc}"
        ) from None
    if answer is None:
        raise SalesRefused("refund.sale_unknown", f"sale {sale_id} is not known on this terminal nor in the cloud")
    # The cloud's answer is either the sale body with its device, or {"sale": ..., "device_id": ...}.
    body = answer.get("sale", answer) if isinstance(answer, dict) else None
    device = (answer.get("device_id") or answer.get("original_device_id")) if isinstance(answer, dict) else None
    try:
        sale = kc.Sale.model_validate({k: v for k, v in body.items() if k in kc.Sale.model_fields}).model_dump(
            mode="json"
        )
    except (ValidationError, AttributeError) as exc:
        log.error(
            "the cloud's answer for a sale is not a valid sale", extra={"sale_id": sale_id, "problem": str(exc)[:300]}
        )
        raise SalesRefused("refund.sale_unknown", f"the cloud's copy of sale {sale_id} is not valid") from None
    if sale["sale_id"] != sale_id or not isinstance(device, str) or not device:
        raise SalesRefused("refund.sale_unknown", f"the cloud answered another sale or no device for {sale_id}")
    refunded: dict[int, tuple[int, int]] = {}
    paid_out: dict[str, int] = {}
    whole = False
    listed = answer.get("refunds")
    if isinstance(listed, list):  # per refund, so this terminal's own ones can be left out
        for one in listed:
            if not isinstance(one, dict) or str(one.get("refund_id")) in counted:
                continue
            if one.get("scope") == "whole":
                whole = True
            for line in one.get("lines") or []:
                try:
                    index, qty, amount = int(line["line_index"]), int(line["qty_milli"]), int(line["amount"])
                except (KeyError, TypeError, ValueError):
                    continue
                before = refunded.get(index, (0, 0))
                refunded[index] = (before[0] + qty, before[1] + amount)
            for payment in one.get("payments") or []:
                try:
                    method, amount = str(payment["method"]), int(payment["amount"])
                except (KeyError, TypeError, ValueError):
                    continue
                paid_out[method] = paid_out.get(method, 0) + amount
    else:
        for line in answer.get("refunded_lines", []):
            try:
                refunded[int(line["line_index"])] = (int(line["qty_milli"]), int(line["amount"]))
            except (KeyError, TypeError, ValueError):
                continue
        whole = bool(answer.get("whole_refunded"))
    if whole:  # refunded in full elsewhere
        refunded = {i: (line["qty_milli"], line["total"]) for i, line in enumerate(sale["lines"])}
    return ForeignSale(sale, device, refunded, paid_out)
