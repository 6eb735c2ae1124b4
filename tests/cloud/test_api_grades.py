"""Grades at every level: what a member sees follows its level, what it may change its grade.
Viewers read everything their level's admin reads and change nothing; managers make the
operational changes; only admins create users and handle the tokens of others. Everyone
handles their own tokens, which carry their grade."""

from __future__ import annotations

import itertools
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cloud_api.api.schemas import RoleName
from cloud_api.tenancy.models import Grade, Level, Role
from tests.cloud.api_support import Api, error_code

VALID_UNTIL = (datetime.now(UTC) + timedelta(days=365)).isoformat()
_serial = itertools.count(1)


def serial() -> int:
    """A number no other call in this module gets: names and codes stay unique per tenant."""
    return next(_serial)


@dataclass
class World:
    """A partner serving a company (an active link), each with its admin, plus a member of
    `role` at the partner, the company or the owner."""

    api: Api
    role: str
    pid: int
    partner_admin: str
    cid: int
    company_admin: str
    link_id: int
    member: str = ""

    @classmethod
    def build(cls, api: Api, role: str) -> World:
        pid, partner_admin = api.partner(f"Grades P{serial()}")
        cid, company_admin = api.company(f"Grades C{serial()}")
        world = cls(api, role, pid, partner_admin, cid, company_admin, api.link(company_admin, cid, partner_admin, pid))
        world.member = world.new_user(role)
        return world

    def new_user(self, role: str, by: str | None = None) -> str:
        """A user of `role` in this world's tenant of its level, made by that level's admin."""
        level = Role.level_of(role)
        if level == Level.PARTNER:
            return self.api.user(role, by or self.partner_admin, partner_id=self.pid)
        if level == Level.COMPANY:
            return self.api.user(role, by or self.company_admin, company_id=self.cid)
        return self.api.user(role, by)

    @property
    def level_admin(self) -> str:
        return {Level.OWNER: self.api.owner_token, Level.PARTNER: self.partner_admin}.get(
            Role.level_of(self.role), self.company_admin
        )

    def user_id(self, token: str) -> int:
        return self.api.call("GET", "/me", token, 200).json()["id"]

    def call(self, method: str, path: str, token: str, body: dict[str, Any] | None = None) -> Any:
        return self.api.call(method, path, token, json=body)

    def issued_licence(self) -> str:
        reply = self.call(
            "POST", f"/partners/{self.pid}/licences", self.api.owner_token, {"count": 1, "valid_until": VALID_UNTIL}
        )
        return reply.json()[0]["id"]

    def pending_link(self) -> int:
        """A new company of the owner asking this world's partner to serve it."""
        cid, admin = self.api.company(f"Asking C{serial()}")
        return self.call("POST", f"/companies/{cid}/link-requests", admin, {"partner_id": self.pid}).json()["id"]


# ------------------------------------------------------------------------------ what each level reads
READS: dict[str, list[str]] = {
    Level.OWNER: ["/partners", "/companies", "/users", "/links", "/companies/{cid}/points-of-sale"],
    Level.PARTNER: ["/partners/{pid}", "/companies", "/users", "/links", "/partners/{pid}/licences?scope=all"],
    Level.COMPANY: [
        "/companies/{cid}",
        "/users",
        "/links",
        "/companies/{cid}/points-of-sale",
        "/companies/{cid}/licences",
        "/companies/{cid}/cashiers",
    ],
}

# ------------------------------------------------------------------------------ what each level changes
Act = Callable[[World, str], Any]  # does one change as the given token; returns the reply


def register(kind: str) -> Act:
    return lambda w, token: w.call("POST", f"/{kind}", token, {"name": f"New {kind} {serial()}"})


def add_point_of_sale(w: World, token: str) -> Any:
    n = serial()
    return w.call("POST", f"/companies/{w.cid}/points-of-sale", token, {"name": f"Shop {n}", "code": f"S{n}"})


def issue_licence(w: World, token: str) -> Any:
    return w.call("POST", f"/partners/{w.pid}/licences", token, {"count": 1, "valid_until": VALID_UNTIL})


def answer_link(answer: str) -> Act:
    def act(w: World, token: str) -> Any:
        return w.call("POST", f"/links/{w.pending_link()}/{answer}", token)

    return act


def unseal_licence(w: World, token: str) -> Any:
    return w.call("POST", f"/licences/{w.issued_licence()}/unseal", token)


def assign_licence(w: World, token: str) -> Any:
    return w.call("POST", f"/licences/{w.issued_licence()}/assign", token, {"company_id": w.cid})


def create_cashier(w: World, token: str) -> Any:
    body = {"name": "Cashier", "operator_code": f"{serial() % 10000:04d}"}
    return w.call("POST", f"/companies/{w.cid}/cashiers", token, body)


def end_link(w: World, token: str) -> Any:
    return w.call("POST", f"/links/{w.link_id}/end", token)


OPERATIONAL: dict[str, list[Act]] = {
    Level.OWNER: [register("partners"), register("companies"), add_point_of_sale, issue_licence],
    Level.PARTNER: [answer_link("accept"), answer_link("reject"), unseal_licence, assign_licence],
    # ending the link goes last: the partner's changes above need it
    Level.COMPANY: [add_point_of_sale, create_cashier, end_link],
}


def create_user(w: World, token: str) -> Any:
    level = Role.level_of(w.role)
    tenant = {Level.PARTNER: {"partner_id": w.pid}, Level.COMPANY: {"company_id": w.cid}}.get(level, {})
    return w.call("POST", "/users", token, {"name": "New colleague", "role": Role.of(level, Grade.VIEWER), **tenant})


def issue_token_of_admin(w: World, token: str) -> Any:
    return w.call("POST", f"/users/{w.user_id(w.level_admin)}/tokens", token, {"label": "by a colleague"})


def list_tokens_of_admin(w: World, token: str) -> Any:
    return w.call("GET", f"/users/{w.user_id(w.level_admin)}/tokens", token)


def revoke_token_of_colleague(w: World, token: str) -> Any:
    colleague = w.new_user(Role.of(Role.level_of(w.role), Grade.ADMIN), by=w.level_admin)
    token_id = w.call("GET", f"/users/{w.user_id(colleague)}/tokens", colleague).json()[0]["id"]
    return w.call("DELETE", f"/tokens/{token_id}", token)


# (act, the status a non-admin gets): another's token is not found rather than forbidden,
# as before grades existed
PEOPLE: list[tuple[Act, int]] = [
    (create_user, 403),
    (issue_token_of_admin, 403),
    (list_tokens_of_admin, 403),
    (revoke_token_of_colleague, 404),
]

EVERY_ROLE = [pytest.param(role, id=role) for role in Role.ALL]


# ------------------------------------------------------------------------------ tests
def test_roles_are_level_and_grade() -> None:
    assert set(typing.get_args(RoleName)) == set(Role.ALL)
    assert [Role.of(level, grade) for level in Level.ALL for grade in Grade.ALL] == list(Role.ALL)
    assert [(Role.level_of(r), Role.grade_of(r)) for r in Role.ALL] == list(itertools.product(Level.ALL, Grade.ALL))
    assert (Role.COMPANY, Role.of(Level.OWNER, Grade.ADMIN)) == (
        ("company_admin", "company_manager", "company_viewer"),
        Role.OWNER_ADMIN,
    )
    with pytest.raises(ValueError, match="partner_owner"):
        Role.level_of("partner_owner")
    with pytest.raises(ValueError, match="'boss'"):
        Role.of(Level.COMPANY, "boss")
    assert Grade.at_least(Grade.ADMIN, Grade.MANAGER) and not Grade.at_least(Grade.VIEWER, Grade.MANAGER)


@pytest.mark.parametrize("role", EVERY_ROLE)
def test_every_grade_reads_what_its_admin_reads(api: Api, role: str) -> None:
    world = World.build(api, role)
    for template in READS[Role.level_of(role)]:
        path = template.format(pid=world.pid, cid=world.cid)
        as_admin = api.call("GET", path, world.level_admin, 200).json()
        assert api.call("GET", path, world.member, 200).json() == as_admin, path


@pytest.mark.parametrize("role", EVERY_ROLE)
def test_changes_need_a_manager_and_people_an_admin(api: Api, role: str) -> None:
    world = World.build(api, role)
    grade = Role.grade_of(role)
    for act in OPERATIONAL[Role.level_of(role)]:
        reply = act(world, world.member)
        if grade == Grade.VIEWER:
            assert (reply.status_code, error_code(reply)) == (403, "forbidden"), (act, reply.text)
            assert "read-only" in reply.json()["error"]["message"]
        else:
            assert reply.status_code in (200, 201), (act, reply.status_code, reply.text)
    for act, refused in PEOPLE:
        reply = act(world, world.member)
        if grade == Grade.ADMIN:
            assert reply.status_code in (200, 201), (act, reply.status_code, reply.text)
        else:
            assert reply.status_code == refused, (act, reply.status_code, reply.text)


@pytest.mark.parametrize("role", EVERY_ROLE)
def test_everyone_handles_their_own_tokens_which_keep_their_grade(api: Api, role: str) -> None:
    world = World.build(api, role)
    me = world.user_id(world.member)
    issued = api.call("POST", f"/users/{me}/tokens", world.member, 201, json={"label": "second"}).json()
    assert api.call("GET", "/me", issued["token"], 200).json()["role"] == role
    write = OPERATIONAL[Role.level_of(role)][0](world, issued["token"])
    assert write.status_code in ((403,) if Role.grade_of(role) == Grade.VIEWER else (200, 201)), write.text
    assert len(api.call("GET", f"/users/{me}/tokens", world.member, 200).json()) == 2
    api.call("DELETE", f"/tokens/{issued['info']['id']}", world.member, 200)
    api.call("GET", "/me", issued["token"], 401)


@pytest.mark.parametrize(
    ("role", "sees_key"),
    [
        ("partner_admin", True),
        ("partner_manager", True),
        ("partner_viewer", False),
        ("company_admin", True),
        ("company_manager", True),
        ("company_viewer", False),
        ("owner_admin", False),
    ],
)
def test_the_licence_key_shows_to_its_holders_admins_and_managers(api: Api, role: str, sees_key: bool) -> None:
    world = World.build(api, role)
    kept = world.issued_licence()
    api.call("POST", f"/licences/{kept}/unseal", world.partner_admin, 200)  # the partner's own stock
    sold = world.issued_licence()
    api.call("POST", f"/licences/{sold}/assign", world.partner_admin, 200, json={"company_id": world.cid})
    held = kept if Role.level_of(role) == Level.PARTNER else sold
    licence = api.call("GET", f"/licences/{held}", world.member, 200).json()
    assert (licence["key"] is not None) == sees_key


def test_an_owner_viewer_registers_nothing(api: Api) -> None:
    viewer = api.user(Role.OWNER_VIEWER)
    for path in ("/partners", "/companies"):
        reply = api.call("POST", path, viewer, 403, json={"name": "Not by a viewer"})
        assert error_code(reply) == "forbidden" and "owner_viewer is read-only" in reply.json()["error"]["message"]
    assert api.call("GET", "/partners", viewer, 200).json() == api.call("GET", "/partners", api.owner_token).json()


def test_a_manager_cannot_raise_anyone_to_admin(api: Api) -> None:
    world = World.build(api, Role.COMPANY_MANAGER)
    for role in (Role.COMPANY_ADMIN, Role.COMPANY_MANAGER):
        body = {"name": "Promoted", "role": role, "company_id": world.cid}
        reply = api.call("POST", "/users", world.member, 403, json=body)
        assert "needs an admin of your company" in reply.json()["error"]["message"]
