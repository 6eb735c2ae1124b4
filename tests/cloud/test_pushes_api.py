"""The pushes admin API: a device's config document, desired vs. reported state, commands
with their replies; tenant scoping and refused input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from broker import contract as kc
from cloud_api.ingest.models import CommandReply, DevicePresence, DeviceReport
from cloud_api.pushes import commands
from tests.cloud.api_support import Api, add_device, error_code


@pytest.fixture(scope="module")
def shop(api: Api) -> dict:
    cid, admin = api.company("Push Shop")
    add_device(api, "push-till-1", cid)
    add_device(api, "push-till-2", cid)
    other_cid, other_admin = api.company("Other Push Shop")
    add_device(api, "push-other", other_cid)
    pid, partner = api.partner("Push Partner")
    api.link(admin, cid, partner, pid)
    return {
        "cid": cid,
        "admin": admin,
        "viewer": api.user("company_viewer", admin, company_id=cid),
        "partner": partner,
        "other_cid": other_cid,
        "other_admin": other_admin,
    }


def device_path(shop: dict, device: str = "push-till-1", company: str = "cid") -> str:
    return f"/companies/{shop[company]}/devices/{device}"


def report_state(api: Api, device_id: str, applied: dict[str, int], seq: int) -> None:
    """The device's up/state report and online status, as the ingest stores them."""
    state = kc.DeviceState(software_version="0.1.0", applied_versions=applied, outbox_depth=0)
    now = datetime.now(UTC)
    with Session(api.engine) as session, session.begin():
        session.merge(
            DeviceReport(
                device_id=device_id,
                kind="state",
                seq=seq,
                message_id=kc.uuid7(),
                reported_at=now,
                report=state.model_dump(mode="json", exclude_none=True),
            )
        )
        session.merge(
            DevicePresence(
                device_id=device_id,
                state="online",
                boot_id=uuid.uuid4(),
                status_message_id=kc.uuid7(),
                status_at=now,
                last_seen_at=now,
            )
        )


def test_admin_sets_the_config_document_and_each_change_gets_a_new_version(api: Api, shop: dict) -> None:
    first = api.call(
        "PUT", f"{device_path(shop)}/state/config", shop["admin"], 200, json={"doc": {"language": "en"}}
    ).json()
    assert first["version"] == 1 and first["doc"] == {"language": "en"} and first["domain"] == "config"
    assert first["published_version"] == 0 and first["published_at"] is None and first["updated_by"] is not None
    second = api.call(
        "PUT",
        f"{device_path(shop)}/state/config",
        api.owner_token,
        200,
        json={"doc": {"language": "de", "receipt_footer": "Danke"}},
    ).json()
    assert second["version"] == 2
    read = api.call("GET", f"{device_path(shop)}/state/config", shop["viewer"], 200).json()
    assert read == second
    assert error_code(api.call("GET", f"{device_path(shop)}/state/cashiers", shop["viewer"], 404)) == "not_found"


def test_desired_vs_reported_shows_whether_the_device_is_up_to_date(api: Api, shop: dict) -> None:
    path = device_path(shop, "push-till-2")
    api.call("PUT", f"{path}/state/config", shop["admin"], 200, json={"doc": {"n": 1}})
    api.call("PUT", f"{path}/state/config", shop["admin"], 200, json={"doc": {"n": 2}})
    state = api.call("GET", f"{path}/state", shop["viewer"], 200).json()
    assert state["presence"] is None and state["reported_at"] is None and state["up_to_date"] is False
    domains = {d["domain"]: d for d in state["domains"]}
    assert domains["config"] == {
        "domain": "config",
        "desired_version": 2,
        "published_version": 0,
        "applied_version": None,
        "up_to_date": False,
    }
    assert domains["cashiers"]["desired_version"] is None and domains["cashiers"]["up_to_date"] is True
    report_state(api, "push-till-2", {"config": 1}, seq=10)
    state = api.call("GET", f"{path}/state", shop["viewer"], 200).json()
    assert state["presence"] == "online" and state["software_version"] == "0.1.0" and state["reported_at"]
    assert [d["applied_version"] for d in state["domains"] if d["domain"] == "config"] == [1]
    assert state["up_to_date"] is False
    report_state(api, "push-till-2", {"config": 2}, seq=11)
    assert api.call("GET", f"{path}/state", shop["viewer"], 200).json()["up_to_date"] is True


def test_only_the_company_and_the_owner_reach_its_devices(api: Api, shop: dict) -> None:
    body = {"json": {"doc": {"x": 1}}}
    # another company: its own path hides our device, ours hides everything
    assert (
        error_code(
            api.call(
                "PUT", f"{device_path(shop, 'push-till-1', 'other_cid')}/state/config", shop["other_admin"], 404, **body
            )
        )
        == "not_found"
    )
    assert error_code(api.call("GET", f"{device_path(shop)}/state", shop["other_admin"], 404)) == "not_found"
    assert error_code(api.call("GET", f"{device_path(shop)}/commands", shop["other_admin"], 404)) == "not_found"
    # a device of another company under our company's path
    assert error_code(api.call("GET", f"{device_path(shop, 'push-other')}/state", shop["admin"], 404)) == "not_found"
    assert error_code(api.call("GET", f"{device_path(shop, 'no-such-till')}/state", shop["admin"], 404)) == "not_found"
    # viewers read, partners see the company exists but not its devices
    assert error_code(api.call("PUT", f"{device_path(shop)}/state/config", shop["viewer"], 403, **body)) == "forbidden"
    assert (
        error_code(api.call("POST", f"{device_path(shop)}/commands", shop["viewer"], 403, json={"name": "ping"}))
        == "forbidden"
    )
    assert error_code(api.call("GET", f"{device_path(shop)}/state", shop["partner"], 403)) == "forbidden"
    assert error_code(api.call("GET", f"{device_path(shop)}/state", "kst_" + "x" * 43, 401)) == "unauthenticated"


@pytest.mark.parametrize(
    "body",
    [
        {"doc": {"footer": "a\u0000b"}},
        {"doc": {"blob": "x" * (2 * 1024 * 1024)}},
        {"doc": ["not", "an", "object"]},
        {"doc": {}, "extra": True},
        {},
    ],
)
def test_documents_that_cannot_be_sent_are_refused(api: Api, shop: dict, body: dict) -> None:
    reply = api.call("PUT", f"{device_path(shop)}/state/config", shop["admin"], 422, json=body)
    assert error_code(reply) == "invalid_request"


def test_a_command_is_recorded_and_shown_with_its_reply(api: Api, shop: dict) -> None:
    path = device_path(shop)
    created = api.call("POST", f"{path}/commands", shop["admin"], 201, json={"name": "ping"}).json()
    assert created["state"] == "queued" and created["attempts"] == 0 and created["reply"] is None
    assert created["name"] == "ping" and created["args"] == {} and created["created_by"] is not None
    command_id = uuid.UUID(created["id"])
    assert kc.is_uuid7(command_id)
    one = api.call("GET", f"{path}/commands/{command_id}", shop["viewer"], 200).json()
    assert one == created
    # a reply from another device reusing the id is not this command's answer
    with Session(api.engine) as session, session.begin():
        session.add(
            CommandReply(
                correlation_id=command_id,
                device_id="push-other",
                ok=True,
                reply={"ok": True, "result": {"forged": True}},
                message_id=kc.uuid7(),
                received_at=datetime.now(UTC),
            )
        )
    assert api.call("GET", f"{path}/commands/{command_id}", shop["viewer"], 200).json()["reply"] is None


def test_answered_and_failed_replies_are_visible(api: Api, shop: dict) -> None:
    path = device_path(shop, "push-till-2")
    ok = api.call("POST", f"{path}/commands", shop["admin"], 201, json={"name": "ping"}).json()
    failed = api.call(
        "POST",
        f"{path}/commands",
        api.owner_token,
        201,
        json={"name": "cashiers.load", "args": {"reason": "test"}, "expires_in_s": 60},
    ).json()
    now = datetime.now(UTC)
    with Session(api.engine) as session, session.begin():
        session.add(
            CommandReply(
                correlation_id=uuid.UUID(ok["id"]),
                device_id="push-till-2",
                ok=True,
                reply={"ok": True, "result": {"pong": True}},
                message_id=kc.uuid7(),
                received_at=now,
            )
        )
        session.add(
            CommandReply(
                correlation_id=uuid.UUID(failed["id"]),
                device_id="push-till-2",
                ok=False,
                reply={"ok": False, "error": {"code": "unknown_command", "message": "no handler"}},
                message_id=kc.uuid7(),
                received_at=now,
            )
        )
    got = api.call("GET", f"{path}/commands/{ok['id']}", shop["viewer"], 200).json()
    assert got["state"] == "answered" and got["reply"]["ok"] is True and got["reply"]["result"] == {"pong": True}
    got = api.call("GET", f"{path}/commands/{failed['id']}", shop["viewer"], 200).json()
    assert got["state"] == "answered" and got["reply"]["ok"] is False
    assert got["reply"]["error"] == {"code": "unknown_command", "message": "no handler"}
    page = api.call("GET", f"{path}/commands?limit=1", shop["viewer"], 200).json()
    assert [c["id"] for c in page["items"]] == [failed["id"]] and page["next_offset"] == 1  # newest first
    page = api.call("GET", f"{path}/commands?limit=1&offset=1", shop["viewer"], 200).json()
    assert [c["id"] for c in page["items"]] == [ok["id"]] and page["next_offset"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"name": "licence.release", "args": {"licence_id": "L", "epoch": 1}},  # the licence flow's own
        {"name": "no.such.command"},
        {"name": "ping", "args": {"x": "\u0000"}},
        {"name": "ping", "args": {"blob": "x" * 300_000}},
        {"name": "ping", "expires_in_s": 1},
        {"name": "ping", "extra": 1},
    ],
)
def test_commands_that_cannot_be_sent_are_refused(api: Api, shop: dict, body: dict) -> None:
    assert (
        error_code(api.call("POST", f"{device_path(shop)}/commands", shop["admin"], 422, json=body))
        == "invalid_request"
    )


def test_unknown_command_ids_are_not_found(api: Api, shop: dict) -> None:
    assert error_code(api.call("GET", f"{device_path(shop)}/commands/{kc.uuid7()}", shop["admin"], 404)) == "not_found"
    other = api.call(
        "POST",
        f"{device_path(shop, 'push-other', 'other_cid')}/commands",
        shop["other_admin"],
        201,
        json={"name": "ping"},
    ).json()
    assert error_code(api.call("GET", f"{device_path(shop)}/commands/{other['id']}", shop["admin"], 404)) == "not_found"


def test_the_api_offers_exactly_the_admin_commands() -> None:
    from cloud_api.api.pushes import AdminCommandName

    assert set(AdminCommandName.__args__) == {c.value for c in commands.ADMIN_COMMANDS}  # type: ignore[attr-defined]


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(doc=st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=6))
def test_any_json_document_is_stored_and_read_back_or_refused_never_a_server_error(
    api: Api, shop: dict, doc: dict
) -> None:
    reply = api.call("PUT", f"{device_path(shop)}/state/config", shop["admin"], json={"doc": doc})
    assert reply.status_code in (200, 422), reply.text
    if reply.status_code == 422:
        assert error_code(reply) == "invalid_request" and "\\x00" in repr(doc), reply.text  # only NUL is refused
        return
    assert same_json(api.call("GET", f"{device_path(shop)}/state/config", shop["viewer"], 200).json()["doc"], doc)
    command = api.call(
        "POST", f"{device_path(shop)}/commands", shop["admin"], 201, json={"name": "ping", "args": doc}
    ).json()
    assert same_json(command["args"], doc)


def same_json(got: object, sent: object) -> bool:
    """Equal as JSON values: PostgreSQL's JSONB may give 3.5e+16 back as 35000000000000000."""
    if (
        isinstance(got, (int, float))
        and isinstance(sent, (int, float))
        and not isinstance(got, bool)
        and not isinstance(sent, bool)
    ):
        return float(got) == float(sent)
    if isinstance(got, dict) and isinstance(sent, dict):
        return got.keys() == sent.keys() and all(same_json(got[k], sent[k]) for k in got)
    if isinstance(got, list) and isinstance(sent, list):
        return len(got) == len(sent) and all(same_json(a, b) for a, b in zip(got, sent, strict=True))
    return type(got) is type(sent) and got == sent
