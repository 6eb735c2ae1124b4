"""The terminal's status page: a read-only HTML view for the technician standing at the till.

``GET /status`` shows the agent, devices, cloud link, outbox, licence, roster and the last
receipts; ``GET /status/jobs/{job_id}.png`` is a receipt as it came out of the printer, painted
from the job's stored ESC/POS bytes (agent/hardware/preview.py, as ``kassactl print show``).
Both are for the terminal itself (a loopback client) or whoever holds a POS token
(``?token=`` or ``Authorization: Bearer``). Rendered with Jinja2 from agent/posapi/templates,
in the site's language; Jinja2 and the painter load with the first page, not at agent start.
"""

from __future__ import annotations

import time
from datetime import timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from babel.dates import format_timedelta
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse

from agent.hardware.preview import preview
from agent.hardware.print_queue import PrintQueueError
from agent.i18n import N_, Language, language
from agent.posapi.access import is_loopback
from agent.posapi.errors import ApiError
from agent.posapi.messages import localize
from agent.posapi.service import PosService
from agent.posapi.tokens import PosTokens

if TYPE_CHECKING:
    import jinja2

PAGE_PATH = "/status"
JOB_PNG_PATH = "/status/jobs/{job_id}.png"
RECEIPTS_SHOWN = 5
REFRESH_S = 10  # a kiosk keeps the page open: it reloads itself

# Device and job states as a person reads them (the codes stay in kassactl and the API).
STATE_WORDS = {
    "ready": N_("ready"),
    "offline": N_("offline"),
    "cover_open": N_("cover open"),
    "paper_near_end": N_("paper near end"),
    "paper_out": N_("paper out"),
    "drawer_open": N_("drawer open"),
    "drawer_closed": N_("drawer closed"),
    "unknown": N_("unknown"),
    "queued": N_("queued"),
    "printing": N_("printing"),
    "printed": N_("printed"),
    "failed": N_("failed"),
    "needs_attention": N_("needs attention"),
    "running": N_("running"),
    "starting": N_("starting"),
    "stopping": N_("stopping"),
}


def may_see(client_host: str | None, token: str | None, tokens: PosTokens) -> bool:
    """The terminal itself (a loopback address) may look; anyone else needs an active POS token."""
    return is_loopback(client_host) or tokens.check(token) is not None


def _token_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.query_params.get("token") or None


def _require_access(request: Request) -> None:
    service: PosService = request.app.state.pos
    client = request.client.host if request.client is not None else None
    if not may_see(client, _token_of(request), service.tokens):
        raise ApiError(
            "pos.token_missing",
            "the status page is shown on the terminal itself, or with a POS token: /status?token=<POS token>",
        )


@lru_cache(maxsize=1)
def _templates() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("agent.posapi", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _age(lang: Language, seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return format_timedelta(timedelta(seconds=seconds), threshold=1.5, locale=lang.locale)


def page_data(service: PosService, lang: Language, token: str | None) -> dict[str, Any]:
    """What the template shows, already in the site's language and formats."""
    parts, config = service.parts, service.runtime.config
    agent = parts.agent.status()  # holds every running component's status: read once, used below
    components = agent["components"]
    hardware = components["hardware"]
    link = components.get("cloud")
    verdict = parts.licence.sale_verdict()
    cashiers = components["cashiers"]
    query = f"?token={token}" if token else ""

    def word(state: str) -> str:
        return lang.gettext(STATE_WORDS[state]) if state in STATE_WORDS else state

    jobs = parts.hardware.queue.recent(RECEIPTS_SHOWN)
    return {
        "device_id": config.device_id,
        "point_of_sale": config.site.point_of_sale,
        "now": lang.datetime(time.time()),
        "agent": {
            "state": word(str(agent["state"])),
            "version": agent["version"],
            "uptime": _age(lang, agent["uptime_s"]),
        },
        "printers": [
            {
                "name": name,
                "status": word(p["status"]),
                "ok": p["status"] == "ready",
                "queued": lang.number(p["queued"]),
                "needs_attention": lang.number(p["needs_attention"]),
                # "offline" under "offline" says nothing: only a reason of its own is shown
                "last_error": p["last_error"] if p["last_error"] != p["status"] else None,
            }
            for name, p in hardware["printers"].items()
        ],
        "scanners": [
            {"name": name, "status": word(s["status"]), "ok": s["status"] == "ready"}
            for name, s in hardware["scanners"].items()
        ],
        "drawers": hardware["drawers"],
        "cloud": None
        if link is None
        else {
            "connected": link["connected"],
            "broker": link["broker"],
            "last_error": link["last_error"],
            "outbox_depth": lang.number(link["outbox_depth"]),
            "outbox_oldest": _age(lang, link["outbox_oldest_age_s"]),
        },
        "licence": {
            "ok": verdict.ok,
            "message": localize(lang, verdict.code, verdict.message, {})[0],
            "expires_at": None if verdict.expires_at is None else lang.datetime(verdict.expires_at, seconds=False),
        },
        "roster_version": lang.number(cashiers.get("roster_version", 0)),
        "open_sessions": lang.number(cashiers.get("open_sessions", 0)),
        "jobs": [
            {
                "job_id": job.job_id,
                "short_id": job.job_id[:12],
                "printer": job.printer,
                "kind": job.kind,
                "state": word(job.state),
                "ok": job.state == "printed",
                "at": lang.datetime(job.printed_at or job.created_at),
                "png": JOB_PNG_PATH.format(job_id=job.job_id) + query,
            }
            for job in jobs
        ],
    }


async def status_page(request: Request) -> HTMLResponse:
    _require_access(request)
    service: PosService = request.app.state.pos
    lang = language(service.runtime.config.site.language)
    data = page_data(service, lang, request.query_params.get("token"))
    html = (
        _templates()
        .get_template("status.html")
        .render(_=lang.gettext, lang=lang.locale.language, refresh_s=REFRESH_S, **data)
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


async def job_png(request: Request, job_id: str) -> Response:
    _require_access(request)
    service: PosService = request.app.state.pos
    try:
        shown = preview(service.parts.hardware, job_id, png=True)
    except PrintQueueError:
        raise ApiError("http.not_found", f"no print job {job_id}") from None
    assert shown.png is not None
    return Response(shown.png, media_type="image/png", headers={"Cache-Control": "no-store"})


def add_routes(app: FastAPI) -> None:
    """The page and its previews; not in the POS API's route table (routes.ROUTES): they answer HTML
    and images to a person, not JSON to a POS, and are left out of the OpenAPI document."""
    app.add_api_route(PAGE_PATH, status_page, methods=["GET"], include_in_schema=False)
    app.add_api_route(JOB_PNG_PATH, job_png, methods=["GET"], include_in_schema=False)
