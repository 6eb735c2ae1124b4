"""Each cabinet's sections, in the order people use them (labels are catalogue msgids)."""

from __future__ import annotations

from cloud_api.refusals import N_

CABINET_LABELS = {"owner": N_("Owner"), "partner": N_("Partner"), "company": N_("Company")}
GRADE_LABELS = {"admin": N_("admin"), "manager": N_("manager"), "viewer": N_("viewer")}

NAV: dict[str, list[tuple[str, str]]] = {
    "owner": [
        (N_("Partners"), "/owner/partners"),
        (N_("Documents"), "/owner/documents"),
        (N_("People"), "/owner/people"),
        (N_("API tokens"), "/owner/tokens"),
        (N_("Audit"), "/owner/audit"),
    ],
    "partner": [
        (N_("Licences"), "/partner/licences"),
        (N_("Documents"), "/partner/documents"),
        (N_("Link requests"), "/partner/links"),
        (N_("Clients"), "/partner/clients"),
        (N_("People"), "/partner/people"),
        (N_("API tokens"), "/partner/tokens"),
        (N_("Audit"), "/partner/audit"),
    ],
    "company": [
        (N_("Overview"), "/company/overview"),
        (N_("Devices"), "/company/devices"),
        (N_("Points of sale"), "/company/points-of-sale"),
        (N_("Licences"), "/company/licences"),
        (N_("Partner"), "/company/partner"),
        (N_("People"), "/company/people"),
        (N_("API tokens"), "/company/tokens"),
        (N_("Audit"), "/company/audit"),
    ],
}
HOME = {level: items[0][1] for level, items in NAV.items()}
