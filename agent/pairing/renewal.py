"""Renewing the broker certificate of a paired terminal before it runs out.

A terminal paired through the cloud holds a certificate of limited life (825 days by default).
Once fewer than ``[cloud] certificate_renew_before_days`` are left, it sends the cloud a CSR for
its same broker key, signed with its identity key (``POST /pairing/renewals``), checks what comes
back exactly as at pairing (its own key and id, chained to the CA sent), replaces ``broker.crt``
atomically and reconnects with it. Nothing else changes: the key never leaves the device, sales
go on locally, and the outbox resends what was in flight during the reconnect.

Failures are retried with a growing, jittered delay; a 403 ``device_revoked`` stops renewing
(the terminal was shut out of the broker on purpose). A certificate configured by hand (not the
one pairing installed in ``<state_dir>/keys/``) is never touched.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509

from agent.loop_failures import LoopFailures
from agent.pairing.client import PairingClient, PairingHttpError, PairingNetworkError, retry_delay
from agent.pairing.install import InstallError, check_credentials, write_credentials
from agent.pairing.keys import BROKER_CERT, KEYS_DIR, KeyFileError, load_or_create_device_keys
from broker.contract.pairing import renewal_request

log = logging.getLogger(__name__)

# However far the expiry, look again this often: the clock may have been wrong or set since.
MAX_SLEEP = timedelta(hours=6)


@dataclass(frozen=True)
class RenewalSettings:
    state_dir: Path
    device_id: str
    cert_file: Path
    renew_before: timedelta
    retry_min_s: float
    retry_max_s: float


def renews(state_dir: Path, cert_file: Path | None) -> bool:
    """True when the configured certificate is the one pairing installed (so ours to renew)."""
    return cert_file is not None and cert_file.resolve() == (state_dir / KEYS_DIR / BROKER_CERT).resolve()


def next_check(not_after: datetime, now: datetime, renew_before: timedelta) -> timedelta:
    """How long to wait before renewing a certificate that runs out at `not_after` (0: now)."""
    return max(timedelta(0), min(not_after - renew_before - now, MAX_SLEEP))


class CertificateRenewal:
    """The renewal loop of one paired terminal; `on_renewed` (given the new certificate) makes the
    cloud link use the new files."""

    def __init__(
        self, settings: RenewalSettings, client: PairingClient, on_renewed: Callable[[x509.Certificate], None]
    ) -> None:
        self.settings = settings
        self.client = client
        self.on_renewed = on_renewed
        self.renewals = 0
        self.last_renewed_at: datetime | None = None
        self.next_check_at: datetime | None = None
        self.last_error: str | None = None
        self.stopped_reason: str | None = None
        self._rng = random.Random()
        self._cloud_http = LoopFailures(log, "certificate renewal: cloud request")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="certificate-renewal")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def status(self) -> dict[str, Any]:
        return {
            "renewals": self.renewals,
            "last_renewed_at": self.last_renewed_at.isoformat(timespec="seconds") if self.last_renewed_at else None,
            "next_check_at": self.next_check_at.isoformat(timespec="minutes") if self.next_check_at else None,
            "last_error": self.last_error,
            "stopped": self.stopped_reason,
        }

    async def _run(self) -> None:
        failures = 0
        installed: x509.Certificate | None = None  # the certificate just renewed: no need to read it back
        while True:
            if installed is not None:
                not_after, installed = installed.not_valid_after_utc, None
            else:
                try:
                    not_after = await asyncio.to_thread(self._not_after)
                except (OSError, ValueError) as exc:
                    self._stop(f"cannot read {self.settings.cert_file}: {exc}")
                    return
            wait = next_check(not_after, self.client.now(), self.settings.renew_before)
            if wait > timedelta(0):
                self.next_check_at = self.client.now() + wait
                await asyncio.sleep(wait.total_seconds())
                continue
            self.next_check_at = None
            try:
                renewed = await asyncio.to_thread(self._renew)
            except PairingHttpError as exc:
                self._cloud_http.succeeded(api_url=self.client.api_url)  # it answered: the connection works
                if exc.code in ("device_revoked", "not_paired"):
                    self._stop(f"the cloud refuses renewals: {exc.message}")
                    return
                failures += 1
                delay = (
                    exc.retry_after_s if exc.code == "rate_limited" and exc.retry_after_s else self._backoff(failures)
                )
                self._failed(exc.message, delay)
            except PairingNetworkError as exc:
                failures += 1
                self.last_error = str(exc)
                self._cloud_http.unreachable(str(exc), api_url=self.client.api_url)
                delay = self._backoff(failures)
            except (InstallError, KeyFileError, OSError) as exc:
                failures += 1
                delay = self._backoff(failures)
                self._failed(str(exc), delay)
            else:
                failures = 0
                self._cloud_http.succeeded(api_url=self.client.api_url)
                self.on_renewed(renewed)
                delay = self._after_renewal(renewed)
                installed = renewed
            await asyncio.sleep(delay)

    def _not_after(self) -> datetime:
        return x509.load_pem_x509_certificate(self.settings.cert_file.read_bytes()).not_valid_after_utc

    def _renew(self) -> x509.Certificate:
        """One renewal: ask, check, install (blocking; runs in a thread)."""
        s = self.settings
        keys = load_or_create_device_keys(s.state_dir, s.device_id)
        credentials = self.client.renew(renewal_request(s.device_id, keys.identity, keys.csr, self.client.now()))
        checked = check_credentials(credentials, s.device_id, keys.broker_key, self.client.now())
        write_credentials(s.state_dir, checked)
        return checked.certificate

    def _after_renewal(self, certificate: x509.Certificate) -> float:
        self.renewals += 1
        self.last_renewed_at = datetime.now(UTC)
        self.last_error = None
        not_after = certificate.not_valid_after_utc
        log.info(
            "broker certificate renewed",
            extra={"serial": format(certificate.serial_number, "x"), "not_after": not_after.isoformat()},
        )
        left = not_after - self.client.now()
        if left < self.settings.renew_before:
            # The cloud issues certificates shorter than our margin: renewing again at once would
            # loop. Wait half of what is left (it only ever gets a fresh certificate).
            log.warning(
                "the renewed certificate is again inside certificate_renew_before_days; "
                "lower it below the cloud's certificate lifetime",
                extra={"not_after": not_after.isoformat(), "renew_before_days": self.settings.renew_before.days},
            )
            wait = max(left / 2, timedelta(seconds=self.settings.retry_max_s))
            self.next_check_at = self.client.now() + wait
            return wait.total_seconds()
        return 0.0

    def _failed(self, message: str, delay: float) -> None:
        if message != self.last_error:
            log.warning(
                "broker certificate renewal failed; will retry", extra={"error": message, "retry_in_s": round(delay, 1)}
            )
        self.last_error = message

    def _stop(self, reason: str) -> None:
        log.error("broker certificate renewal stopped", extra={"reason": reason})
        self.stopped_reason = reason

    def _backoff(self, failures: int) -> float:
        return retry_delay(failures, self.settings.retry_min_s, self.settings.retry_max_s, self._rng)
