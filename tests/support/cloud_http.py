"""The cloud's HTTP API served by a real uvicorn on a free loopback port (optionally HTTPS),
in a thread of the test process, for tests where a real agent process talks to it."""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cloud_api.app import create_app
from cloud_api.settings import CloudSettings
from cloud_api.tenancy.tokens import create_owner


@dataclass
class LiveApi:
    url: str
    engine: Engine
    owner_token: str
    verify: ssl.SSLContext | bool  # what httpx needs to trust the server

    def call(self, method: str, path: str, token: str, expect: int | None = None, **kw: Any) -> httpx.Response:
        reply = httpx.request(
            method, self.url + path, headers={"Authorization": f"Bearer {token}"}, verify=self.verify, timeout=10, **kw
        )
        if expect is not None:
            assert reply.status_code == expect, (method, path, reply.status_code, reply.text)
        return reply

    def company_with_admin(self, name: str, store_code: str) -> tuple[int, str, int]:
        """A company, its company_admin token and one point of sale: (company id, token, pos id)."""
        cid = self.call("POST", "/companies", self.owner_token, 201, json={"name": name}).json()["id"]
        admin = self.call(
            "POST",
            "/users",
            self.owner_token,
            201,
            json={"name": f"{name} admin", "role": "company_admin", "company_id": cid},
        ).json()["token"]
        pos = self.call(
            "POST", f"/companies/{cid}/points-of-sale", admin, 201, json={"name": store_code, "code": store_code}
        ).json()["id"]
        return cid, admin, pos


@contextlib.contextmanager
def live_api(settings: CloudSettings, engine: Engine, tls: tuple[Path, Path, Path] | None = None) -> Iterator[LiveApi]:
    """Serve the API until the block ends. ``tls``: (certificate, key, CA that signed it)."""
    with Session(engine, expire_on_commit=False) as session:
        _owner, _admin, token = create_owner(session, "Owner")
    tls_options = {"ssl_certfile": str(tls[0]), "ssl_keyfile": str(tls[1])} if tls else {}
    # Port 0, read back once bound: a port chosen beforehand can be taken by another test process.
    config = uvicorn.Config(
        create_app(settings, engine), host="127.0.0.1", port=0, log_level="warning", lifespan="off", **tls_options
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="cloud-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the cloud API (uvicorn) did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        verify = ssl.create_default_context(cafile=str(tls[2])) if tls else False
        yield LiveApi(f"{'https' if tls else 'http'}://127.0.0.1:{port}", engine, token, verify)
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.contextmanager
def live_pairing_api(directory: Path, **overrides: Any) -> Iterator[LiveApi]:
    """A live API (plain HTTP on loopback) on a fresh SQLite database, signing device
    certificates with a PKI made by make-certs.sh in `directory`."""
    from broker.launcher import free_port
    from cloud_api.db import make_engine
    from cloud_api.schema import upgrade as upgrade_schema
    from tests.deploy.tls_broker import make_certs

    pki = directory / "pki"
    assert make_certs(pki).returncode == 0
    engine = make_engine(f"sqlite:///{directory / 'cloud.db'}")
    upgrade_schema(engine)
    settings = CloudSettings(
        **{
            "database_url": str(engine.url),
            "device_ca_cert_file": pki / "device-ca.crt",
            "device_ca_key_file": pki / "device-ca.key",
            "pairing_broker_ca_file": pki / "cloud-ca.crt",
            "pairing_broker_host": "127.0.0.1",
            "pairing_broker_port": free_port(),
            "pairing_poll_interval_s": 1,
            **overrides,
        }
    )
    try:
        with live_api(settings, engine) as api:
            yield api
    finally:
        engine.dispose()
