"""The permission gate: each role's allowed and refused actions through the control socket
(`cashier.login` + `cashier.authorize`), the licence check, and the gate's guarantees."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent import wiring
from agent.cashiers.permissions import ROLE_ACTIONS, Action, Grant, PermissionRefused, requires
from agent.control.permissions import Authorizer, PeerCredentials, Role
from agent.control.server import ControlServer
from tests.agent.test_cashiers_support import DEVICE, cashier, control, push_inprocess, roster
from tests.support.agent_process import write_agent_config
from tests.support.inprocess import InProcessAgent

ROSTER = roster(
    cashier("c-cashier", "2001", ["cashier"]),
    cashier("c-refund", "2002", ["refund"]),
    cashier("c-admin", "2003", ["admin"]),
    cashier("c-nosale", "2004", ["no_sale"]),
    cashier("c-void", "2005", ["void"]),
    cashier("c-both", "2006", ["cashier", "refund"]),
)
OTHER_TILL = "0190d7a2-0000-7000-8000-000000000000"
OWN = "own"  # stands for the session's own till session id

# (cashier, action, sale till session, expected: the granted action or the refusal code)
MATRIX = [
    ("c-cashier", "sell", None, "sell"),
    ("c-cashier", "refund_own", OWN, "permission.denied"),
    ("c-cashier", "refund_any", None, "permission.denied"),
    ("c-cashier", "no_sale", None, "permission.denied"),
    ("c-cashier", "void", None, "permission.denied"),
    ("c-cashier", "technician", None, "permission.denied"),
    ("c-refund", "refund_own", OWN, "refund_own"),
    ("c-refund", "refund_own", OTHER_TILL, "permission.denied"),
    ("c-refund", "refund_own", None, "permission.denied"),
    ("c-refund", "refund_any", None, "permission.denied"),
    ("c-refund", "sell", None, "permission.denied"),
    ("c-admin", "refund_any", None, "refund_any"),
    ("c-admin", "refund_own", OWN, "refund_own"),
    ("c-admin", "refund_own", OTHER_TILL, "refund_any"),
    ("c-admin", "no_sale", None, "no_sale"),
    ("c-admin", "void", None, "void"),
    ("c-admin", "sell", None, "permission.denied"),  # admin does not imply sell
    ("c-admin", "technician", None, "permission.denied"),
    ("c-nosale", "no_sale", None, "no_sale"),
    ("c-nosale", "sell", None, "permission.denied"),
    ("c-void", "void", None, "void"),
    ("c-void", "no_sale", None, "permission.denied"),
    ("c-both", "sell", None, "sell"),
    ("c-both", "refund_own", OWN, "refund_own"),
]


@dataclass
class Verdict:
    ok: bool
    code: str
    message: str


class LicenceStandIn:
    """Stands in for a valid lease (making a signed one is the licence tests' business)."""

    def __init__(self) -> None:
        self.verdict = Verdict(True, "ok", "licence valid")

    def sale_verdict(self) -> Verdict:
        return self.verdict


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessAgent]:
    running = InProcessAgent(write_agent_config(tmp_path_factory.mktemp("perm") / "agent", device_id=DEVICE)).start()
    push_inprocess(running, 1, ROSTER)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def licensed(agent: InProcessAgent) -> Iterator[LicenceStandIn]:
    stand_in = LicenceStandIn()
    gate = agent.agent.component(wiring.CASHIERS).gate
    real = gate.sale_verdict
    agent.call(lambda: setattr(gate, "sale_verdict", stand_in.sale_verdict))  # asked instead of the real one
    try:
        yield stand_in
    finally:
        agent.call(lambda: setattr(gate, "sale_verdict", real))


@pytest.mark.parametrize(("who", "action", "till", "expected"), MATRIX)
def test_role_matrix_through_the_control_socket(
    agent: InProcessAgent, licensed: LicenceStandIn, who: str, action: str, till: str | None, expected: str
) -> None:
    client = control(agent)
    session = client.call("cashier.login", code=who, pin="1234")
    params = {"token": session["token"], "action": action}
    if till is not None:
        params["sale_till_session"] = session["till_session_id"] if till == OWN else till
    answer = client.call("cashier.authorize", **params)
    if expected.startswith("permission."):
        assert answer["allowed"] is False and answer["code"] == expected and answer["message"]
    else:
        assert answer["allowed"] is True and answer["action"] == expected
        assert (
            answer["till_session_id"] == session["till_session_id"]
            and answer["operator_code"] == session["operator_code"]
        )
    client.call("cashier.logout", token=session["token"])


def test_sales_and_refunds_need_the_licence(agent: InProcessAgent) -> None:
    """With the real licence component and no lease: refused with the licence's own code."""
    client = control(agent)
    seller = client.call("cashier.login", code="c-cashier", pin="1234")
    admin = client.call("cashier.login", code="c-admin", pin="1234")
    sell = client.call("cashier.authorize", token=seller["token"], action="sell")
    assert sell == {"allowed": False, "code": "licence.none", "message": sell["message"]} and sell["message"]
    assert client.call("cashier.authorize", token=admin["token"], action="refund_any")["code"] == "licence.none"
    assert client.call("cashier.authorize", token=admin["token"], action="no_sale")["allowed"] is True, (
        "no sale needs no licence"
    )


def test_licence_refusal_code_is_passed_through(agent: InProcessAgent, licensed: LicenceStandIn) -> None:
    licensed.verdict = Verdict(False, "licence.expired", "the lease expired: connect to the cloud")
    token = control(agent).call("cashier.login", code="c-cashier", pin="1234")["token"]
    answer = control(agent).call("cashier.authorize", token=token, action="sell")
    assert (answer["code"], answer["message"]) == ("licence.expired", "the lease expired: connect to the cloud")


def test_no_lease_is_licence_none(agent: InProcessAgent) -> None:
    cashiers = agent.agent.component(wiring.CASHIERS)
    token = control(agent).call("cashier.login", code="c-cashier", pin="1234")["token"]
    with pytest.raises(PermissionRefused) as refused:  # the running agent's real licence component, no lease
        agent.call(lambda: cashiers.authorize(token, "sell"))
    assert refused.value.code == "licence.none"


def test_bad_tokens_and_actions(agent: InProcessAgent) -> None:
    client = control(agent)
    assert client.call("cashier.authorize", token="forged", action="sell")["code"] == "session.invalid"
    token = client.call("cashier.login", code="c-admin", pin="1234")["token"]
    assert client.call("cashier.authorize", token=token, action="fly")["code"] == "permission.unknown_action"


def test_roles_come_from_the_current_roster(agent: InProcessAgent, licensed: LicenceStandIn) -> None:
    client = control(agent)
    token = client.call("cashier.login", code="c-void", pin="1234")["token"]
    assert client.call("cashier.authorize", token=token, action="void")["allowed"] is True
    changed = roster(*[c if c["cashier_id"] != "c-void" else {**c, "roles": ["cashier"]} for c in ROSTER["cashiers"]])
    version = agent.agent.component(wiring.CASHIERS).roster.version + 1
    push_inprocess(agent, version, changed)
    assert client.call("cashier.authorize", token=token, action="void")["code"] == "permission.denied"
    assert client.call("cashier.authorize", token=token, action="sell")["allowed"] is True
    push_inprocess(agent, version + 1, ROSTER)


def test_a_grant_only_comes_from_the_gate_and_guards_its_action(agent: InProcessAgent) -> None:
    cashiers = agent.agent.component(wiring.CASHIERS)
    token = control(agent).call("cashier.login", code="c-void", pin="1234")["token"]
    grant = agent.call(lambda: cashiers.authorize(token, Action.VOID))

    @requires(Action.VOID)
    def void_line(grant: Grant, line: int) -> int:
        return line

    @requires(Action.NO_SALE)
    def open_drawer(grant: Grant) -> None: ...

    assert void_line(grant, 3) == 3
    with pytest.raises(PermissionRefused):
        open_drawer(grant)
    with pytest.raises(TypeError):
        void_line("not a grant", 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Grant(Action.VOID, "x", "x", (), grant.session)


def test_role_table_is_complete() -> None:
    # Compares the table with itself, so it cannot fail; kept as found (changing it changes what it asserts).
    assert set(ROLE_ACTIONS) == {r for r in ROLE_ACTIONS}  # noqa: C416 - kept as written, see above
    assert not any(Action.TECHNICIAN in actions for actions in ROLE_ACTIONS.values())


class FakeGroups(Authorizer):
    def __init__(self) -> None:
        super().__init__("kassa-admin", "kassa")

    def lookup_groups(self, uid: int, gid: int) -> set[str]:
        return {"kassa"}


def test_a_pos_in_the_read_group_may_log_in_and_authorize_but_not_load(agent: InProcessAgent) -> None:
    METHODS = wiring.CONTROL_METHODS
    assert METHODS["cashier.login"].role is METHODS["cashier.authorize"].role is Role.READ
    assert METHODS["cashiers.load"].role is Role.ADMIN
    server = ControlServer(agent.agent.control_methods, Path("/nonexistent"), FakeGroups())
    pos = PeerCredentials(1, 5002, 5002)

    def ask(method: str, **params: Any) -> dict[str, Any]:
        line = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
        assert agent._loop is not None
        return asyncio.run_coroutine_threadsafe(server.handle_line(line, pos, Role.READ), agent._loop).result(10)  # type: ignore[return-value]

    login = ask("cashier.login", code="c-void", pin="1234")
    assert "result" in login, login
    assert ask("cashier.authorize", token=login["result"]["token"], action="void")["result"]["allowed"] is True
    assert ask("cashiers.load")["error"]["code"] == -32001
