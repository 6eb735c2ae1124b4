"""agent.sales.cloud_lookup.lookup_sale against a live cloud API (uvicorn on a loopback port),
against a closed port, and without [cloud] api_url."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from agent.config import AgentConfig, load_config
from agent.pairing.keys import load_or_create_identity_key
from agent.sales.cloud_lookup import CloudRefused, CloudUnreachable, lookup_sale
from broker import contract as kc
from broker.contract.examples import _refund, _sale
from broker.contract.signing import public_key_text
from broker.launcher import free_port
from cloud_api.ingest.apply import apply_batch
from cloud_api.settings import CloudSettings
from cloud_api.tenancy.models import Company, Device
from tests.cloud.api_support import migrated_engine
from tests.support.cloud_http import live_api

T0 = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


def agent_for(tmp_path: Path, device_id: str, api_url: str | None) -> AgentConfig:
    state = tmp_path / device_id
    state.mkdir()
    cloud = f'[cloud]\napi_url = "{api_url}"\ntimeout_s = 3\n' if api_url else ""
    path = tmp_path / f"{device_id}.toml"
    path.write_text(f'device_id = "{device_id}"\n[paths]\nstate_dir = "{state}"\n{cloud}')
    return load_config(path, environ={})


@pytest.fixture
def cloud(tmp_path: Path):
    with (
        migrated_engine("sqlite", tmp_path) as engine,
        live_api(CloudSettings(database_url=str(engine.url)), engine) as live,
    ):
        yield live


def test_lookup_sale_from_a_live_cloud(cloud, tmp_path: Path) -> None:
    till_b = agent_for(tmp_path, "till-b", cloud.url)
    key = load_or_create_identity_key(till_b.paths.state_dir)
    cid, _admin, _pos = cloud.company_with_admin("Agent Lookup Co", "POS-MAIN")
    with Session(cloud.engine) as session:
        assert session.get(Company, cid) is not None
        for device_id, public_key in (("till-a", None), ("till-b", public_key_text(key.public_key()))):
            session.add(Device(device_id=device_id, company_id=cid, public_key=public_key, created_at=T0))
        session.commit()
    sale = _sale().model_copy(update={"sale_id": uuid.uuid4(), "receipt_no": 3})
    refund = _refund().model_copy(
        update={"refund_id": uuid.uuid4(), "original_sale_id": sale.sale_id, "original_device_id": "till-a"}
    )
    envelopes = [
        kc.up_message(
            body,
            device_id="till-a",
            seq=seq,
            boot_id=uuid.uuid4(),
            clock_trusted=True,
            created_at=T0 + timedelta(minutes=seq),
        )
        for seq, body in ((1, sale), (2, refund))
    ]
    with Session(cloud.engine) as session, session.begin():
        assert (
            apply_batch(
                session, [kc.parse_message(kc.publication(e).topic, kc.publication(e).payload) for e in envelopes]
            ).applied
            == 2
        )

    found = lookup_sale(till_b, sale.sale_id)
    assert found is not None
    assert found["device_id"] == "till-a" and found["sold_at"] == "2026-07-01T09:01:00.000Z"
    assert found["sale"] == sale.model_dump(mode="json")  # every key present, null when unset
    assert kc.Sale.model_validate(found["sale"]) == sale
    assert found["refunded_amount"] == 1190 and found["whole_refunded"] is False
    assert found["refunded_lines"] == [{"line_index": 2, "qty_milli": 1000, "amount": 1190}]
    assert [r["refund_id"] for r in found["refunds"]] == [str(refund.refund_id)]
    assert found["refunds"][0]["payments"] == [{"method": "cash", "amount": 1190, "reference": None}]
    assert lookup_sale(till_b, uuid.uuid4()) is None  # the cloud does not know it

    # a device the cloud does not know (or not paired): refused, which is also "unreachable"
    stranger = agent_for(tmp_path, "till-z", cloud.url)
    with pytest.raises(CloudRefused) as refused:
        lookup_sale(stranger, sale.sale_id)
    assert refused.value.code == "bad_signature" and isinstance(refused.value, CloudUnreachable)


def test_lookup_sale_with_no_cloud(tmp_path: Path) -> None:
    closed = agent_for(tmp_path, "till-c", f"http://127.0.0.1:{free_port()}")
    started = datetime.now(UTC)
    with pytest.raises(CloudUnreachable, match="cannot reach"):
        lookup_sale(closed, uuid.uuid4())
    assert datetime.now(UTC) - started < timedelta(seconds=5)
    with pytest.raises(CloudUnreachable, match="api_url"):
        lookup_sale(agent_for(tmp_path, "till-d", None), uuid.uuid4())


def test_a_wrong_device_clock_is_corrected_from_the_cloud(
    cloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agent.sales.cloud_lookup as cloud_lookup

    till = agent_for(tmp_path, "till-w", cloud.url)
    key = load_or_create_identity_key(till.paths.state_dir)
    cid, _admin, _pos = cloud.company_with_admin("Agent Clock Co", "POS-MAIN")
    with Session(cloud.engine) as session:
        session.add(
            Device(device_id="till-w", company_id=cid, public_key=public_key_text(key.public_key()), created_at=T0)
        )
        session.commit()
    sale = _sale().model_copy(update={"sale_id": uuid.uuid4(), "receipt_no": 1})
    envelope = kc.up_message(sale, device_id="till-w", seq=1, boot_id=uuid.uuid4(), clock_trusted=True, created_at=T0)
    with Session(cloud.engine) as session, session.begin():
        apply_batch(session, [kc.parse_message(kc.publication(envelope).topic, kc.publication(envelope).payload)])
    original_init = cloud_lookup._LookupClient.__init__
    attempts = []

    def skewed_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.clock_offset = -timedelta(hours=3)  # as if the terminal's clock were 3 h behind

    original_lookup = cloud_lookup._LookupClient.lookup

    def counted(self, request):
        attempts.append(request)
        return original_lookup(self, request)

    monkeypatch.setattr(cloud_lookup._LookupClient, "__init__", skewed_init)
    monkeypatch.setattr(cloud_lookup._LookupClient, "lookup", counted)
    found = lookup_sale(till, sale.sale_id)
    assert found is not None and found["sale"]["sale_id"] == str(sale.sale_id)
    assert len(attempts) == 2  # refused as clock_skew once, then signed with the cloud's time
