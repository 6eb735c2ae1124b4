"""Ask the cloud for a sale made on another terminal of the company (an admin refund).

    reply = await asyncio.to_thread(lookup_sale, config, sale_id)   # blocking: use a thread

`lookup_sale` signs a `device.sale_lookup` request with the device's Ed25519 identity key
(broker/contract/device_requests.py) and posts it to `[cloud] api_url` +
``/device-api/sales/lookup`` with the HTTP client of pairing (agent/pairing/client.py), with
a short timeout. It returns the cloud's `SaleLookupReply` as a JSON-ready dict, or None when
the cloud does not know the sale (never received, or not a sale of this company). Anything
that is no answer raises `CloudUnreachable`: no `api_url`, network failure, timeout, a reply
that is not the API; a refusal (bad signature: the device is not paired; clock skew) raises
its subclass `CloudRefused`. The device signs with its own clock, and once more with the
cloud's time (the HTTP Date header of the refusal) when the cloud says the clocks differ.
"""

from __future__ import annotations

import uuid
from typing import Any

from agent.config import AgentConfig
from agent.pairing.client import PairingClient, PairingHttpError, PairingNetworkError
from agent.pairing.keys import KeyFileError, load_or_create_identity_key
from broker.contract.device_requests import SALE_LOOKUP_PATH, SaleLookupReply, SaleLookupRequest, sale_lookup_request

__all__ = ["LOOKUP_TIMEOUT_S", "CloudRefused", "CloudUnreachable", "lookup_sale"]

LOOKUP_TIMEOUT_S = 5.0  # a cashier is waiting: at most this, or [cloud] timeout_s if shorter


class CloudUnreachable(Exception):
    """No answer from the cloud: `[cloud] api_url` unset, network down, timeout, not the API."""


class CloudRefused(CloudUnreachable):
    """The cloud answered but refused the request; ``code`` is its stable error code
    (``bad_signature``: the device is not paired with this cloud; ``clock_skew``; ...)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"the cloud refused the sale lookup: {status} {code}: {message}")
        self.status = status
        self.code = code


class _LookupClient(PairingClient):
    def lookup(self, request: SaleLookupRequest) -> SaleLookupReply:
        return self._post(SALE_LOOKUP_PATH, request, SaleLookupReply)


def lookup_sale(config: AgentConfig, sale_id: uuid.UUID) -> dict[str, Any] | None:
    """The sale `sale_id` as the cloud has it, with what was refunded of it, or None when the
    cloud does not know it. Blocking (at most about twice the timeout); raises CloudUnreachable."""
    cloud = config.cloud
    if not cloud.api_url:
        raise CloudUnreachable("no [cloud] api_url is set: the cloud cannot be asked")
    try:
        identity = load_or_create_identity_key(config.paths.state_dir)
    except (KeyFileError, OSError) as exc:
        raise CloudRefused(0, "no_identity_key", str(exc)) from None
    client = _LookupClient(cloud.api_url, cloud.ca_file, min(cloud.timeout_s, LOOKUP_TIMEOUT_S))
    for attempt in (1, 2):
        request = sale_lookup_request(config.device_id, identity, sale_id, client.now())
        try:
            reply = client.lookup(request)
        except PairingNetworkError as exc:
            raise CloudUnreachable(str(exc)) from None
        except PairingHttpError as exc:
            if exc.status == 404 and exc.code == "not_found":
                return None
            if exc.code == "clock_skew" and attempt == 1:
                continue  # the refusal's Date header set client.clock_offset: sign again with it
            raise CloudRefused(exc.status, exc.code, exc.message) from None
        return reply.model_dump(mode="json")
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
