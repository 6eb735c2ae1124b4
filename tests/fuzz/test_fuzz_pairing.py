"""Fuzzing the pairing client: what the cloud's pairing endpoints answer, over real HTTP.

A small HTTP server stands in for the cloud and answers each request with a drawn status,
``Date`` and ``Retry-After`` headers and body: a valid registration or poll reply, a mutated
one, a kassa error reply, or bytes. The property: ``PairingClient`` returns a reply model or
raises ``PairingHttpError`` (with a code and a message) or ``PairingNetworkError`` (with a
message), never anything else; what the pairing loop then does with it (the next poll's delay,
the wait a refusal asks for, the clock offset the ``Date`` header sets) stays finite and in
bounds.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agent.config import AgentConfig, load_config
from agent.pairing.client import PairingClient, PairingHttpError, PairingNetworkError
from agent.pairing.component import POLL_BOUNDS_S, Pairing
from agent.pairing.install import InstallError, check_credentials
from broker.contract.pairing import PollReply, PollRequest, Registration, RegistrationRequest
from tests.fuzz.strategies import damaged, dumps, json_values, mostly, mutated, weighted
from tests.support.agent_process import write_agent_config

pytestmark = pytest.mark.timeout(120)

REGISTRATION = {
    "device_id": "pos-0001",
    "state": "pending",
    "pairing_code": "7KQ2M9XDT",
    "expires_at": "2026-11-22T20:00:00Z",
    "poll_interval_s": 5.0,
}
POLL = {
    **REGISTRATION,
    "state": "claimed",
    "credentials": {
        "certificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "ca_certificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "broker_ca_certificates": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "broker_host": "mqtt.example.invalid",
        "broker_port": 8883,
    },
}
ERROR = {"error": {"code": "rate_limited", "message": "too many requests from this address"}}

# Header values as an HTTP server can send them: latin-1, no line breaks.
header_text = st.text(st.characters(max_codepoint=255, blacklist_characters="\r\n"), max_size=40)
dates = (
    st.sampled_from(
        [
            "Sun, 22 Nov 2026 19:00:00 GMT",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "Mon, 01 Jan 0001 00:00:00 GMT",
            "Thu, 01 Jan 1970 00:00:00 GMT",
            "Sun, 22 Nov 2026 19:00:00 +1400",
            "Sun, 22 Nov 2026 19:00:00",
            "22 Nov 2026",
            "yesterday",
            "",
        ]
    )
    | header_text
)
retry_afters = (
    st.sampled_from(
        [
            "120",
            "0",
            "1.5",
            "-1",
            "\xb2",
            "\xb9\xb2",
            "9" * 30,
            "9" * 400,
            "99999999999",
            "Sun, 22 Nov 2026 19:05:00 GMT",
            "",
        ]
    )
    | header_text
)
statuses = weighted(
    (3, st.sampled_from([200, 201])),
    (2, st.sampled_from([202, 204, 400, 401, 403, 404, 409, 410, 422, 429, 500, 502, 503])),
    (1, st.integers(200, 599)),
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    base = draw(st.sampled_from([REGISTRATION, POLL, ERROR]))
    document = draw(mostly(st.just(base), mutated(base), odds=2) | json_values)
    return draw(damaged(dumps(document))) if draw(st.integers(0, 3)) == 0 else dumps(document)


class FakeCloud:
    """Answers every POST with ``self.reply``: (status, headers, body)."""

    def __init__(self) -> None:
        self.reply: tuple[int, dict[str, str], bytes] = (200, {}, b"{}")
        cloud = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers, body = cloud.reply
                self.send_response_only(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def cloud() -> Iterator[FakeCloud]:
    fake = FakeCloud()
    try:
        yield fake
    finally:
        fake.close()


BROKER_KEY = ec.generate_private_key(ec.SECP256R1())
# Requests built without their checks: the client only serialises them.
REGISTER = RegistrationRequest.model_construct(
    device_id="pos-0001", identity_key="k" * 43, csr="csr", pairing_code="7KQ2M9XDT", proof="p"
)
POLL_REQUEST = PollRequest.model_construct(device_id="pos-0001", proof="p")


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory, cloud: FakeCloud) -> AgentConfig:
    path = write_agent_config(
        tmp_path_factory.mktemp("agent"), extra=f'[cloud]\napi_url = "{cloud.url}"\nretry_max_s = 120\n'
    )
    return load_config(path)


def pairing_loop(config: AgentConfig) -> Pairing:
    """The pairing component's decisions (next poll, wait after a refusal); they need only the config."""
    return Pairing(SimpleNamespace(config=config), None, None, None)  # type: ignore[arg-type]


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(status=statuses, body=bodies(), date=st.none() | dates, retry_after=st.none() | retry_afters, poll=st.booleans())
def test_every_cloud_answer_is_a_reply_or_a_refusal_with_a_reason(
    cloud: FakeCloud,
    config: AgentConfig,
    status: int,
    body: bytes,
    date: str | None,
    retry_after: str | None,
    poll: bool,
) -> None:
    headers = {"Content-Type": "application/json"}
    if date is not None:
        headers["Date"] = date
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    cloud.reply = (status, headers, body)
    client = PairingClient(cloud.url, None, timeout_s=10)
    loop = pairing_loop(config)
    try:
        reply = client.poll(POLL_REQUEST) if poll else client.register(REGISTER)
    except PairingHttpError as exc:
        assert exc.code.strip() and exc.message.strip(), exc
        assert exc.retry_after_s is None or (math.isfinite(exc.retry_after_s) and exc.retry_after_s >= 0), (
            exc.retry_after_s
        )
        event(f"refused {exc.code}")
        if exc.code not in ("pairing_code_taken",):  # that one makes a new code in the store
            _registered, delay = asyncio.run(loop._refused(exc, failures=1, registered=True))
            assert 0 <= delay <= config.cloud.retry_max_s, delay
    except PairingNetworkError as exc:
        assert str(exc).strip()
        event("not a reply")
    else:
        assert isinstance(reply, PollReply if poll else Registration)
        if isinstance(reply, PollReply) and reply.credentials is not None:
            try:  # what the loop does with a claimed reply before it installs anything
                check_credentials(reply.credentials, "pos-0001", BROKER_KEY, client.now())
            except InstallError as exc:
                assert str(exc).strip()
        loop._waiting(reply)
        assert POLL_BOUNDS_S[0] <= loop._interval <= POLL_BOUNDS_S[1], loop._interval
        event("reply")
    now = client.now()  # signed proofs carry this time: no Date header may make it fail or absurd
    assert datetime(2000, 1, 1, tzinfo=UTC) <= now <= datetime(3000, 1, 1, tzinfo=UTC), now


def test_a_date_at_the_end_of_the_calendar_leaves_the_clock_offset_alone(cloud: FakeCloud) -> None:
    cloud.reply = (200, {"Date": "Fri, 31 Dec 9999 23:59:59 GMT"}, dumps(REGISTRATION))
    client = PairingClient(cloud.url, None, timeout_s=10)
    client.register(REGISTER)
    assert client.clock_offset.total_seconds() == 0
    assert client.now().year < 3000


@pytest.mark.parametrize(("header", "seconds"), [("\xb2", None), ("9" * 400, 86400.0), ("120", 120.0)])
def test_retry_after_is_plain_seconds_and_finite(cloud: FakeCloud, header: str, seconds: float | None) -> None:
    cloud.reply = (429, {"Retry-After": header}, dumps(ERROR))
    with pytest.raises(PairingHttpError) as refused:
        PairingClient(cloud.url, None, timeout_s=10).register(REGISTER)
    assert refused.value.code == "rate_limited" and refused.value.retry_after_s == seconds


@pytest.mark.parametrize(
    "body",
    [
        {"error": {"code": "", "message": "slow down"}},
        {"error": {"code": "rate_limited", "message": " "}},
        {"error": "rate_limited"},
        "[" * 5000,
    ],
    ids=["empty code", "blank message", "not an object", "deep"],
)
def test_an_error_reply_without_a_code_and_message_is_a_plain_http_error(cloud: FakeCloud, body: object) -> None:
    cloud.reply = (400, {}, body.encode() if isinstance(body, str) else dumps(body))
    with pytest.raises(PairingHttpError) as refused:
        PairingClient(cloud.url, None, timeout_s=10).register(REGISTER)
    assert refused.value.code == "http_error" and "HTTP 400" in refused.value.message
