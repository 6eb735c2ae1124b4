"""The cloud's pairing endpoints over HTTPS, with the standard library (blocking: run it in a thread).

The client keeps the offset between the cloud's clock (the HTTP ``Date`` header of every
reply, errors included) and ours, and signs with the cloud's time: a terminal whose clock was
never set still pairs.
"""

from __future__ import annotations

import json
import random
import ssl
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from agent.version import agent_version
from broker.backoff import half_jitter_delay
from broker.contract.pairing import (
    BrokerCredentials,
    PollReply,
    PollRequest,
    Registration,
    RegistrationRequest,
    RenewalRequest,
)

MAX_REPLY_BYTES = 256 * 1024
# Date headers outside these years are garbled (or a proxy's), not the cloud's clock: taken as
# an offset they would push our time to the calendar's edge, where the next second overflows.
PLAUSIBLE_CLOUD_YEARS = range(2000, 3000)
M = TypeVar("M", bound=BaseModel)


def retry_delay(failures: int, minimum: float, maximum: float, rng: random.Random, cap: float | None = None) -> float:
    """The wait before retrying after `failures` failed requests in a row: doubling from `minimum`
    up to `maximum` (or `cap`, in its place, for one quick retry), jittered down to half so that
    terminals failing together do not retry together."""
    return half_jitter_delay(min(failures - 1, 20), minimum, cap or maximum, rng)


class PairingNetworkError(Exception):
    """The cloud could not be reached or answered with something that is not the API."""


class PairingHttpError(Exception):
    """The cloud refused a request; ``code`` is the stable error code of docs/cloud-api.md."""

    def __init__(self, status: int, code: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s


class PairingClient:
    def __init__(self, api_url: str, ca_file: Path | None, timeout_s: float) -> None:
        self.api_url = api_url.rstrip("/")
        self.timeout_s = timeout_s
        self.clock_offset = timedelta(0)  # the cloud's clock minus ours, from the last Date header
        self._context = (
            ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
            if self.api_url.startswith("https:")
            else None
        )

    def now(self) -> datetime:
        """Our best idea of the cloud's time."""
        return datetime.now(UTC) + self.clock_offset

    def register(self, request: RegistrationRequest) -> Registration:
        return self._post("/pairing/registrations", request, Registration)

    def poll(self, request: PollRequest) -> PollReply:
        return self._post("/pairing/poll", request, PollReply)

    def renew(self, request: RenewalRequest) -> BrokerCredentials:
        return self._post("/pairing/renewals", request, BrokerCredentials)

    def _post(self, path: str, body: BaseModel, reply_model: type[M]) -> M:
        request = urllib.request.Request(
            self.api_url + path,
            data=body.model_dump_json().encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": f"kassa-agent/{agent_version()}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s, context=self._context) as response:
                self._note_clock(response.headers.get("Date"))
                data = response.read(MAX_REPLY_BYTES + 1)
        except urllib.error.HTTPError as exc:
            self._note_clock(exc.headers.get("Date") if exc.headers else None)
            raise self._refusal(exc) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PairingNetworkError(f"cannot reach {self.api_url}: {reason}") from None
        if len(data) > MAX_REPLY_BYTES:
            raise PairingNetworkError(f"{self.api_url}{path} sent more than {MAX_REPLY_BYTES} bytes")
        try:
            return reply_model.model_validate_json(data)
        except ValidationError as exc:
            raise PairingNetworkError(
                f"{self.api_url}{path} answered with something that is not a kassa pairing reply ({exc.error_count()} "
                f"problems)"
            ) from None

    def _refusal(self, exc: urllib.error.HTTPError) -> PairingHttpError:
        retry_after = exc.headers.get("Retry-After") if exc.headers else None
        try:
            error = json.loads(exc.read(MAX_REPLY_BYTES))["error"]
            code, message = str(error["code"]).strip(), str(error["message"]).strip()
            if not code or not message:
                raise ValueError("an error reply without a code or a message")
        except (ValueError, KeyError, TypeError, OSError, RecursionError):  # RecursionError: nesting too deep for json
            code, message = "http_error", f"HTTP {exc.code} {exc.reason} (not a kassa cloud error reply)"
        # Delay-seconds only (RFC 9110); str.isdigit alone also takes digits such as "²".
        # A day at most: 400 nines would be an infinite float.
        seconds = (
            min(float(retry_after), 86400.0)
            if retry_after and retry_after.isascii() and retry_after.isdigit()
            else None
        )
        return PairingHttpError(exc.code, code, message, seconds)

    def _note_clock(self, date_header: str | None) -> None:
        if not date_header:
            return
        try:
            cloud_time = parsedate_to_datetime(date_header)
        except (TypeError, ValueError):
            return
        if cloud_time.tzinfo is not None and cloud_time.year in PLAUSIBLE_CLOUD_YEARS:
            self.clock_offset = cloud_time - datetime.now(UTC)
