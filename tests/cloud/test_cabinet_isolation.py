"""The isolation walk (issue #19): every cabinet route, read from the app itself, requested by
every member of another organisation, of another cabinet level, by a person with no cabinet
open and by nobody signed in. Each gets a refusal page (403/404) or a redirect to sign in or
to choose a cabinet, never anything of the organisation the URL points into, and no POST
changes the database. Then the grades within one organisation: viewers change nothing,
managers reach no admin page.

One world serves the whole module: two owners; partners with sealed, unsealed and moved
licences, their documents, clients and pending requests; companies; people of every grade,
API tokens, invitations (mail, audit). A route added later is walked without editing this
file, and the walk fails if it cannot fill in the route's path parameters (or, for a POST,
find its form in FORMS).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broker.contract import licence as kl
from cloud_api.accounts import people
from cloud_api.accounts.audit import Actor
from cloud_api.accounts.mails import Mailer
from cloud_api.accounts.models import ActionLink, AuditEvent, Person
from cloud_api.documents import service as documents
from cloud_api.documents.models import LicenceDocument, LicenceDocumentLine
from cloud_api.documents.tax_numbers import valid_inn
from cloud_api.licences import book
from cloud_api.licences.models import Licence, LicenceState
from cloud_api.mail.models import MailOutbox
from cloud_api.tenancy import link_service
from cloud_api.tenancy.models import (
    ApiToken,
    Company,
    Device,
    LinkState,
    Owner,
    Partner,
    PartnerLink,
    PointOfSale,
    User,
)
from cloud_api.tenancy.tokens import Principal, create_owner, issue_token
from cloud_api.web.i18n import cabinet_language
from cloud_api.web.org_pages import org_users
from tests.cloud.api_support import migrated_engine
from tests.cloud.web_support import Browser, Cloud, make_cloud

LEVELS = ("owner", "partner", "company")
GRADES = ("admin", "manager", "viewer")

# key, level, name, its owner's key, the grades it has people of. The names are made-up words
# no page prints by itself: finding one in a page means the page shows that organisation.
ORGS = [
    ("O", "owner", "Orion Holdings", "O", GRADES),
    ("O2", "owner", "Sirius Holdings", "O2", ("admin",)),
    ("P1", "partner", "Aurora Partners", "O", GRADES),
    ("P2", "partner", "Borealis Partners", "O", GRADES),
    ("P3", "partner", "Cetus Partners", "O2", ("admin",)),
    ("C1", "company", "Delta Client", "O", GRADES),
    ("C2", "company", "Epsilon Client", "O", GRADES),
    ("C3", "company", "Hydra Client", "O2", ("admin",)),
    ("F", "company", "Fornax Pending", "O", ("admin",)),
    ("G", "company", "Gemini Pending", "O", ("admin",)),
]
# Every company has an open link, so no walked request may legitimately ask for a new one.
LINKS = [("C1", "P1", True), ("C2", "P2", True), ("C3", "P3", True), ("F", "P1", False), ("G", "P2", False)]
HTMX = {"HX-Request": "true"}
DEFAULT_VICTIM = {"owner": "O", "partner": "P1", "company": "C1"}
TWO_HATS = "two-hats@borealis.test"  # a viewer of P2 and of C2 who never chooses a cabinet

# The form each POST route gets: valid, so that only the visitor's rights can stop it.
# "{kind}" is the first object of that kind of the organisation the walk aims at; a form with
# one is also sent, by members of other organisations of the same level, with their objects.
FORMS: dict[str, dict[str, str]] = {
    "/owner/partners/new": {"partner_name": "Walk Partner", "admin_name": "Walk", "admin_email": "a@walk.test"},
    "/owner/partners/{partner_id}/invite": {"email": "b@walk.test", "name": "Walk", "grade": "viewer"},
    "/owner/sales/new": {
        "partner_id": "{partner_id}",
        "quantity": "1",
        "valid_until": (date.today() + timedelta(days=365)).isoformat(),
    },
    "/partner/licences/{licence_id}/key": {},
    "/partner/documents/new/move": {"company_id": "{company_id}", "quantity": "1"},
    "/partner/documents/new/unseal": {
        "firm_name": "Walk Firm",
        "tax_number": "7707083893",
        "buyer_email": "c@walk.test",
    },
    "/partner/links/{link_id}/accept": {},
    "/partner/links/{link_id}/reject": {},
    "/partner/clients/{link_id}/end": {},
    "/company/partner/request": {"partner_id": "{partner_id}", "message": "walk"},
    "/company/partner/links/{link_id}/end": {},
    "/company/licences/{licence_id}/move": {"device_id": "{device_id}"},
    "/company/licences/{licence_id}/release": {},
    "/company/licences/{licence_id}/key": {},
    "/company/points-of-sale/new": {"name": "Walk Shop", "code": "WALK"},
    "/company/points-of-sale/{pos_id}/edit": {"name": "Walk Shop", "code": "WALK"},
    "/company/points-of-sale/{pos_id}/archive": {},
    "/company/points-of-sale/{pos_id}/restore": {},
    "/company/devices/claim": {"pairing_code": "7KQ-2M9-XDT", "point_of_sale_id": "{pos_id}"},
    "/company/devices/{device_id}/move": {"point_of_sale_id": "{pos_id}"},
}
for _level in LEVELS:
    FORMS[f"/{_level}/people/invite"] = {"email": "d@walk.test", "name": "Walk", "grade": "viewer"}
    FORMS[f"/{_level}/tokens"] = {"label": "walk"}
    FORMS[f"/{_level}/tokens/{{token_id}}/revoke"] = {}
# GET pages with an id in the query string: asked with another organisation's ids.
QUERIES = {
    "/owner/sales/new": "partner_id={partner_id}",
    "/owner/documents": "partner_id={partner_id}",
    "/partner/documents/new/move": "company_id={company_id}",
    "/company/partner": "partner={partner_id}",
}
# What only admins may reach (the walk of grades): tokens of others are not even shown (404).
ADMIN_ONLY = [("GET", "/{level}/audit"), ("POST", "/{level}/people/invite")]
ADMIN_ONLY += [(method, "/{level}/tokens/{token_id}/revoke") for method in ("GET", "POST")]
ADMIN_ONLY += [("POST", "/company/partner/request")]
ADMIN_ONLY += [(method, "/company/partner/links/{link_id}/end") for method in ("GET", "POST")]
VIEWER_MAY = {"/owner/tokens", "/partner/tokens", "/company/tokens"}  # everyone makes tokens of their own


@dataclass(frozen=True)
class Route:
    method: str
    path: str

    @property
    def level(self) -> str:
        return self.path.split("/")[1]

    @property
    def params(self) -> list[str]:
        return [part[1:-1].split(":")[0] for part in self.path.split("/") if part.startswith("{")]


@dataclass
class Org:
    key: str
    level: str
    id: int
    name: str
    owner: str
    domain: str
    users: dict[str, int] = field(default_factory=dict)  # grade -> user id of its person
    relatives: dict[str, str] = field(default_factory=dict)  # level -> the org it deals with
    objects: dict[str, list[str]] = field(default_factory=dict)  # path parameter -> ids
    strings: set[str] = field(default_factory=set)  # what names it or its objects
    tokens_of: dict[str, int] = field(default_factory=dict)  # token id -> user id


@dataclass
class Visitor:
    name: str
    browser: Browser
    org: Org | None  # None: nobody signed in, or no cabinet open
    grade: str | None
    user_id: int | None
    signed_in: bool


@dataclass
class World:
    cloud: Cloud
    orgs: dict[str, Org]
    visitors: dict[str, Visitor]
    routes: list[Route]


# ------------------------------------------------------------------------------ the world
def _inn(prefix: str) -> str:
    return next(prefix + digit for digit in "0123456789" if valid_inn(prefix + digit))


def _actor(db: Session, user_id: int) -> Actor:
    user = db.get_one(User, user_id)
    person = db.get_one(Person, user.person_id)
    return Actor(
        Principal(user.id, user.role, user.owner_id, user.partner_id, user.company_id, 0), person.email, person.id
    )


def _make_orgs(cloud: Cloud) -> dict[str, Org]:
    with Session(cloud.engine) as db:
        db.get_one(Owner, cloud.owner_id).name = "Orion Holdings"
        db.commit()
        second, _machine, token = create_owner(db, "Sirius Holdings")
        clouds = {"O": cloud, "O2": Cloud(cloud.app, cloud.engine, second.id, token)}
    orgs: dict[str, Org] = {}
    for key, level, name, owner, grades in ORGS:
        under = clouds[owner]
        if level == "owner":
            org_id = under.owner_id
        else:
            org_id = under.partner(name) if level == "partner" else under.company(name)
        org = orgs[key] = Org(key, level, org_id, name, owner, name.split()[0].lower() + ".test")
        for grade in grades:
            where = {f"{level}_id": org_id} if level != "owner" else {}
            org.users[grade] = under.member(f"{grade}@{org.domain}", f"{level}_{grade}", **where)
    cloud.member(TWO_HATS, "partner_viewer", partner_id=orgs["P2"].id)
    cloud.member(TWO_HATS, "company_viewer", company_id=orgs["C2"].id)
    for org in orgs.values():
        org.relatives["owner"] = org.owner
    for company, partner, _active in LINKS:
        orgs[company].relatives.setdefault("partner", partner)
        orgs[partner].relatives.setdefault("company", company)
        orgs[orgs[partner].owner].relatives.setdefault("partner", partner)
        orgs[orgs[partner].owner].relatives.setdefault("company", company)
    return orgs


def _make_business(cloud: Cloud, orgs: dict[str, Org]) -> None:
    """Links, licences, documents, tokens and invitations, made by the services themselves."""
    moment = datetime.now(UTC)
    mailer = Mailer("http://cabinet.test", cabinet_language("en"))
    with cloud.db() as db:
        for company_key, partner_key, active in LINKS:
            company, partner = orgs[company_key], orgs[partner_key]
            link = link_service.request_link(
                db,
                _actor(db, company.users["admin"]),
                company_id=company.id,
                partner_id=partner.id,
                message=f"{company.name} asks {partner.name}",
                now=moment,
            )
            if active:
                link_service.answer(db, _actor(db, partner.users["admin"]), link.id, accept=True, now=moment)
                partner_actor = _actor(db, partner.users["admin"])
                documents.sell(
                    db,
                    _actor(db, orgs[partner.owner].users["admin"]),
                    partner_id=partner.id,
                    quantity=6,
                    valid_until=moment + timedelta(days=365),
                    now=moment,
                )
                documents.move_sealed(db, partner_actor, company_id=company.id, quantity=2, now=moment)
                documents.unseal_to_self(
                    db,
                    partner_actor,
                    firm_name=f"{partner.name} Buyer Firm",
                    tax_number=_inn(f"77070838{partner_key[-1]}"),
                    buyer_email=f"buyer@buyer-of-{partner.domain}",
                    now=moment,
                )
        _devices_and_earlier_licences(db, orgs, moment)
        for org in orgs.values():
            if org.level == "company":  # one in use, one archived: every point-of-sale page has one to show
                for code, archived in ((f"{org.key}-COUNTER", None), (f"{org.key}-ARCHIVED", moment)):
                    db.add(
                        PointOfSale(
                            company_id=org.id,
                            name=f"{org.name} {code.title()}",
                            code=code,
                            created_at=moment,
                            archived_at=archived,
                        )
                    )
            machine = User(
                name=f"{org.name} robot", role=f"{org.level}_manager", owner_id=orgs[org.owner].id, created_at=moment
            )
            machine.partner_id, machine.company_id = {"partner": (org.id, None), "company": (None, org.id)}.get(
                org.level, (None, None)
            )
            db.add(machine)
            db.flush()
            for grade, user_id in [*org.users.items(), ("robot", machine.id)]:
                issue_token(db, db.get_one(User, user_id), label=f"{org.name} {grade} key")
            people.invite(
                db,
                _actor(db, org.users["admin"]),
                email=f"invitee@{org.domain}",
                name="Invitee",
                role=f"{org.level}_viewer",
                org=(org.level, org.id),
                org_name=org.name,
                now=moment,
                mailer=mailer,
            )
        db.commit()


def _devices_and_earlier_licences(db: Session, orgs: dict[str, Org], moment: datetime) -> None:
    """Each company gets a till that registered its key (a move's target), and the companies
    still waiting for a partner a licence they kept from an earlier one, so that every
    company has a licence for the licence pages' URLs."""
    for company_key, partner_key, active in LINKS:
        company = orgs[company_key]
        db.add(
            Device(device_id=f"till-of-{company.domain}", company_id=company.id, public_key="walk", created_at=moment)
        )
        if not active:
            partner = db.get_one(Partner, orgs[partner_key].id)
            by_user = orgs[partner_key].users["admin"]
            kept = book.issue_licences(db, partner, 1, {}, moment + timedelta(days=365), by_user=by_user, now=moment)[0]
            kept.state, kept.company_id, kept.key_revealed_at = LicenceState.ASSIGNED, company.id, moment
    db.flush()


def _rows_of(org: Org) -> dict[str, Any]:
    """Conditions selecting one organisation's rows, by table."""
    column = f"{org.level}_id"
    if org.level == "owner":
        links = PartnerLink.company_id.in_(select(Company.id).where(Company.owner_id == org.id))
    else:
        links = getattr(PartnerLink, column) == org.id
    return {
        "licences": getattr(Licence, column) == org.id,
        "documents": getattr(LicenceDocument, column) == org.id,
        "links": links,
        "users": org_users(org.level, org.id),
    }


def _collect(cloud: Cloud, orgs: dict[str, Org]) -> None:
    """Each organisation's objects (to fill in URLs) and the strings that identify them."""
    with cloud.db() as db:
        for org in orgs.values():
            where = _rows_of(org)
            users = select(User.id).where(where["users"])
            licences = list(db.scalars(select(Licence).where(where["licences"]).order_by(Licence.id)))
            docs = list(db.scalars(select(LicenceDocument).where(where["documents"])))
            links = list(db.scalars(select(PartnerLink).where(where["links"]).order_by(PartnerLink.state.desc())))
            tokens = list(db.scalars(select(ApiToken).where(ApiToken.user_id.in_(users))))
            stores = list(
                db.scalars(select(PointOfSale).where(PointOfSale.company_id == org.id).order_by(PointOfSale.id))
            )
            stores = stores if org.level == "company" else []
            emails = db.scalars(select(Person.email).join(User, User.person_id == Person.id).where(User.id.in_(users)))
            linked = select(PartnerLink.company_id).where(where["links"])
            if org.level == "owner":
                partners = select(Partner.id).where(Partner.owner_id == org.id)
                companies = select(Company.id).where(Company.owner_id == org.id)
            else:
                partners = select(PartnerLink.partner_id).where(where["links"])
                companies = linked.where(PartnerLink.state == LinkState.ACTIVE)
            org.objects = {
                "partner_id": [str(org.id)] if org.level == "partner" else [str(i) for i in db.scalars(partners)],
                "company_id": [str(org.id)] if org.level == "company" else [str(i) for i in db.scalars(companies)],
                "document_id": [str(doc.id) for doc in docs],
                # one licence of each kind: sealed, unsealed in stock, held by a company
                "licence_id": list({(lic.state, lic.company_id is None): lic.id for lic in licences}.values()),
                "link_id": [str(link.id) for link in links],
                "token_id": [str(token.id) for token in tokens],
                "user_id": [str(i) for i in db.scalars(users)],
                "device_id": list(db.scalars(select(Device.device_id).where(Device.company_id == org.id)))
                if org.level == "company"
                else [],
                "pos_id": [str(pos.id) for pos in stores],
            }
            org.tokens_of = {str(token.id): token.user_id for token in tokens}
            org.strings = {org.name, *emails, *(link.message or "" for link in links)}
            org.strings |= {token.prefix for token in tokens} | set(org.objects["device_id"])
            org.strings |= {pos.code for pos in stores} | {pos.name for pos in stores}
            if org.level == "partner":  # who its clients are is the partner's business too
                org.strings |= set(db.scalars(select(Company.name).where(Company.id.in_(linked))))
            for lic in licences:
                org.strings |= {lic.id, lic.licence_key, kl.format_licence_key(lic.licence_key)}
            for doc in docs:
                org.strings |= {doc.number, doc.firm_name or "", doc.tax_number or "", doc.buyer_email or ""}
            org.strings.discard("")
        for org in orgs.values():
            if org.level == "owner":  # another owner may see nothing of the whole tree
                org.strings |= set().union(*(other.strings for other in orgs.values() if other.owner == org.key))


def _visitors(cloud: Cloud, orgs: dict[str, Org]) -> dict[str, Visitor]:
    found: dict[str, Visitor] = {}
    for org in orgs.values():
        for grade, user_id in org.users.items():
            browser = cloud.browser()
            browser.sign_in(f"{grade}@{org.domain}")
            found[f"{org.key}.{grade}"] = Visitor(f"{org.key}.{grade}", browser, org, grade, user_id, True)
    undecided = cloud.browser()
    assert undecided.sign_in(TWO_HATS).status_code == 200  # the page to choose a cabinet
    found["two-hats"] = Visitor("two-hats", undecided, None, None, None, True)
    found["anonymous"] = Visitor("anonymous", cloud.browser(), None, None, None, False)
    return found


def cabinet_routes(app: Any) -> list[Route]:
    """Every cabinet page of the app; included routers opened (FastAPI keeps them whole in app.routes)."""
    return [
        Route(method, str(context.path))
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute) and (context.path or "/").split("/")[1] in LEVELS
        for method in sorted(context.methods or ())
    ]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with migrated_engine("sqlite", tmp_path_factory.mktemp("walk")) as engine:
        cloud = make_cloud(engine, str(engine.url))
        orgs = _make_orgs(cloud)
        _make_business(cloud, orgs)
        _collect(cloud, orgs)
        yield World(cloud, orgs, _visitors(cloud, orgs), cabinet_routes(cloud.app))


# ------------------------------------------------------------------------------ the walk
def urls(route: Route, org: Org, *, but_tokens_of: int | None = None) -> list[str]:
    """The route's URL for every object of `org` its path parameters take (KeyError: none)."""
    choices = []
    for param in route.params:
        ids = org.objects[param]
        if param == "token_id" and but_tokens_of is not None:
            ids = [i for i in ids if org.tokens_of[i] != but_tokens_of]
        choices.append([(param, i) for i in ids])
    return [route.path.format(**dict(combination)) for combination in itertools.product(*choices)]


def filled(template: str, org: Org) -> str:
    return template.format(**{kind: ids[0] for kind, ids in org.objects.items() if ids})


def form_of(route: Route, org: Org) -> dict[str, str]:
    return {name: filled(value, org) for name, value in FORMS[route.path].items()}


def names_objects(route: Route) -> bool:
    return any("{" in value for value in FORMS.get(route.path, {}).values())


WATCHED: dict[str, Any] = {
    "licences": select(Licence.id, Licence.state, Licence.company_id, Licence.partner_id, Licence.device_id),
    "licence_documents": select(LicenceDocument.id, LicenceDocument.number),
    "licence_document_lines": select(LicenceDocumentLine.document_id, LicenceDocumentLine.licence_id),
    "partner_links": select(PartnerLink.id, PartnerLink.state, PartnerLink.open_company_id),
    "users": select(User.id, User.role, User.owner_id, User.partner_id, User.company_id, User.person_id),
    "api_tokens": select(ApiToken.id, ApiToken.user_id, ApiToken.revoked_at),
    "people": select(Person.id, Person.email, Person.name, Person.password_hash, Person.locale),
    "partners": select(Partner.id, Partner.name),
    "companies": select(Company.id, Company.name),
    "points_of_sale": select(PointOfSale.id, PointOfSale.name, PointOfSale.code, PointOfSale.archived_at),
    "audit_events": select(func.count()).select_from(AuditEvent),
    "mail_outbox": select(func.count()).select_from(MailOutbox),
    "action_links": select(func.count()).select_from(ActionLink),
}


def snapshot(world: World) -> dict[str, str]:
    with Session(world.cloud.engine) as db:
        return {
            table: hashlib.sha256(
                repr(sorted((tuple(row) for row in db.execute(query)), key=repr)).encode()
            ).hexdigest()
            for table, query in WATCHED.items()
        }


@dataclass
class Walk:
    """Requests one visitor's walk, and what went wrong (one line each)."""

    world: World
    visitor: Visitor
    before: dict[str, str]
    problems: list[str] = field(default_factory=list)
    requests: int = 0

    def send(self, method: str, url: str, victim: Org, form: dict[str, str] | None = None, headers: Any = None) -> Any:
        self.requests += 1
        browser = self.visitor.browser
        reply = browser.get(url) if method == "GET" else browser.post(url, form or {}, headers=headers or {})
        asked = url + repr(form)  # what the visitor sent comes back (the language form's "next"): no leak
        whose, secrets = self.secrets(victim)
        leaked = sorted(text for text in secrets if text in reply.text and text not in asked)
        if leaked:
            self.problems.append(f"{method} {url} ({reply.status_code}) shows {whose}'s {leaked}")
        if method == "POST":
            after = snapshot(self.world)
            if after != self.before:
                changed = sorted(table for table in after if after[table] != self.before[table])
                self.problems.append(f"POST {url} ({reply.status_code}) changed {changed}")
                self.before = after
        return reply

    def secrets(self, victim: Org) -> tuple[str, set[str]]:
        """The victim's strings; if the visitor is not of the victim's owner, its owner's whole tree
        (a company may see its owner's partners, but nothing of another owner)."""
        tree = self.world.orgs.get(victim.owner)
        if tree is not None and (self.visitor.org is None or self.visitor.org.owner != victim.owner):
            return f"{tree.key} tree", tree.strings
        return victim.key, victim.strings

    def expect(self, reply: Any, method: str, url: str, statuses: set[int], location: str = "") -> None:
        where = reply.headers.get("location", "")
        if reply.status_code not in statuses or (reply.status_code == 303 and not where.startswith(location)):
            self.problems.append(f"{method} {url}: {reply.status_code} {where} (expected {sorted(statuses)})")
        elif reply.status_code in (403, 404) and 'role="alert"' not in reply.text:
            self.problems.append(f"{method} {url}: {reply.status_code} without a message saying why")

    def report(self) -> str:
        return f"{self.visitor.name}, {len(self.problems)} problems in {self.requests} requests:\n" + "\n".join(
            self.problems
        )


def victims(world: World, visitor: Visitor, level: str) -> list[Org]:
    """Whose objects the visitor's URLs point at: at its own level every other organisation,
    elsewhere the one it deals with (its partner, its client, its owner)."""
    if visitor.org is None:
        return [world.orgs[DEFAULT_VICTIM[level]]]
    if visitor.org.level == level:
        return [org for org in world.orgs.values() if org.level == level and org is not visitor.org]
    return [world.orgs[visitor.org.relatives.get(level, DEFAULT_VICTIM[level])]]


def expected(visitor: Visitor, route: Route) -> tuple[set[int], str]:
    """The statuses (and a 303's target) the visitor may get from the route, aimed elsewhere."""
    if not visitor.signed_in:
        return {303}, "/signin?next="
    if visitor.org is None:
        return {303}, "/choose"
    if visitor.org.level != route.level or route.params:
        return {403, 404}, ""
    if route.method == "GET":  # its own page (some not for every grade), showing nothing of the victim
        return {200, 303} | ({403} if visitor.grade != "admin" else set()), f"/{route.level}"
    return {403, 404, 409, 422}, ""  # its own form, naming another organisation's objects


def walk_route(walk: Walk, route: Route) -> None:
    visitor, method = walk.visitor, route.method
    at_home = visitor.org is not None and visitor.org.level == route.level
    statuses, location = expected(visitor, route)
    for victim in victims(walk.world, visitor, route.level):
        for url in urls(route, victim) if at_home else urls(route, victim)[:1]:
            if at_home and not route.params:
                if method == "POST" and not names_objects(route):
                    continue  # acts on the visitor's own organisation: the grade walk's part
                if method == "GET" and route.path in QUERIES:
                    url = f"{url}?{filled(QUERIES[route.path], victim)}"
            form = form_of(route, victim) if method == "POST" else None
            # htmx posts take other paths in some pages (a row instead of a redirect)
            for headers in [{}, HTMX] if method == "POST" and at_home and route.params else [{}]:
                reply = walk.send(method, url, victim, form, headers)
                walk.expect(reply, method, url, statuses, location)


_nothing = Org("-", "-", 0, "-", "-", "-")  # no strings to look for: the walk of grades checks statuses
VISITOR_NAMES = [f"{key}.{grade}" for key, _level, _name, _owner, grades in ORGS for grade in grades]
VISITOR_NAMES += ["two-hats", "anonymous"]


def test_every_cabinet_route_is_walked(world: World) -> None:
    """A route whose parameters or form this walk cannot fill in fails here, not silently."""
    routes = world.routes
    assert {route.level for route in routes} == set(LEVELS) and len(routes) >= 50, routes
    undone = []
    for route in routes:
        for org in (org for org in world.orgs.values() if org.level == route.level):
            try:
                if not urls(route, org):
                    undone.append(f"{route}: {org.key} has no object for {route.params}")
                if route.method == "POST":
                    form_of(route, org)
            except KeyError as missing:
                undone.append(f"{route.method} {route.path}: add {missing} to Org.objects or the route to FORMS")
    assert not undone, "\n".join(undone)
    schema_paths = set(world.cloud.app.openapi()["paths"])
    assert not schema_paths & {route.path for route in routes}, "cabinet pages belong outside the API schema"


@pytest.mark.parametrize("name", VISITOR_NAMES)
def test_another_organisation_or_cabinet_gets_a_refusal_and_sees_and_changes_nothing(world: World, name: str) -> None:
    walk = Walk(world, world.visitors[name], snapshot(world))
    for route in world.routes:
        walk_route(walk, route)
    assert walk.requests >= 50
    assert not walk.problems, walk.report()
    assert snapshot(world) == walk.before, "a GET changed the database"


@pytest.mark.parametrize("key", ["O", "P1", "P2", "C1", "C2"])
def test_a_viewer_posts_to_every_form_of_its_cabinet_and_changes_nothing(world: World, key: str) -> None:
    org = world.orgs[key]
    walk = Walk(world, world.visitors[f"{key}.viewer"], snapshot(world))
    for route in world.routes:
        if route.level != org.level or route.method != "POST" or route.path in VIEWER_MAY:
            continue
        for url in urls(route, org, but_tokens_of=walk.visitor.user_id):
            reply = walk.send("POST", url, _nothing, form_of(route, org))
            walk.expect(reply, "POST", url, {403, 404} if "token_id" in route.params else {403})
    assert walk.requests >= 5
    assert not walk.problems, walk.report()


@pytest.mark.parametrize("grade", ["manager", "viewer"])
@pytest.mark.parametrize("key", ["O", "P1", "P2", "C1", "C2"])
def test_below_admin_the_admin_pages_are_refused(world: World, key: str, grade: str) -> None:
    org = world.orgs[key]
    walk = Walk(world, world.visitors[f"{key}.{grade}"], snapshot(world))
    for method, template in ADMIN_ONLY:
        route = Route(method, template.replace("{level}", org.level))
        if route.level != org.level:
            continue
        assert route in world.routes, f"{route} is gone: update ADMIN_ONLY"
        for url in urls(route, org, but_tokens_of=walk.visitor.user_id):
            reply = walk.send(method, url, _nothing, form_of(route, org) if method == "POST" else None)
            walk.expect(reply, method, url, {403, 404} if "token_id" in route.params else {403})
    assert not walk.problems, walk.report()
    assert snapshot(world) == walk.before


def test_the_world_holds_what_the_walk_needs(world: World) -> None:
    """Guards the walk against an empty world, where every refusal would be trivially true."""
    p2 = world.orgs["P2"]
    assert len(p2.objects["licence_id"]) == 3 and len(p2.objects["document_id"]) == 3
    assert len(p2.objects["link_id"]) == 2 and len(p2.objects["token_id"]) == 4
    with world.cloud.db() as db:
        states = set(db.scalars(select(PartnerLink.state).where(PartnerLink.partner_id == p2.id)))
        assert states == {LinkState.ACTIVE, LinkState.PENDING}
        assert db.scalar(select(func.count()).select_from(MailOutbox)) == len(world.orgs)
    own = world.visitors["P2.admin"].browser.get("/partner/licences")
    assert own.status_code == 200 and p2.objects["licence_id"][0] in own.text  # the check sees what is shown
