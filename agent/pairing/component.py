"""The pairing component: from no broker certificate to a running, mutually authenticated cloud link.

With ``[cloud] api_url`` set and no client certificate in ``[mqtt]``, the agent starts without
its cloud link and this component (1) makes the device's keys and a pairing code once,
(2) registers with the cloud, (3) polls until a company admin claims the code, (4) checks and
installs the certificate, writes the broker settings to the config file and starts the cloud
link. Every network step is retried with a jittered, growing delay; a restart before the claim
registers again with the same keys and code. ``kassactl status`` and ``kassactl pairing`` show
the stage: unpaired, waiting for claim (with the code), paired. Once paired, the certificate
is renewed before it runs out (renewal.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from cryptography import x509

from agent import meta
from agent.cloud.port import CloudPort
from agent.config import ConfigError, MqttConfig
from agent.config_edit import set_values
from agent.hardware.facade import TillHardware
from agent.loop_failures import LoopFailures
from agent.pairing.client import PairingClient, PairingHttpError, PairingNetworkError, retry_delay
from agent.pairing.install import InstallError, check_credentials, install
from agent.pairing.keys import DeviceKeys, KeyFileError, load_or_create_device_keys
from agent.pairing.renewal import CertificateRenewal, RenewalSettings, renews
from agent.pairing.slip import pairing_slip
from agent.refusal import Refused
from agent.runtime import Runtime
from agent.store import StoreError
from broker.contract.pairing import (
    PairingCodeError,
    PollReply,
    Registration,
    RegistrationState,
    format_pairing_code,
    new_pairing_code,
    normalize_pairing_code,
    poll_request,
    registration_request,
)

log = logging.getLogger(__name__)

CODE_META_KEY = "pairing.code"
POLL_BOUNDS_S = (1.0, 300.0)


class PairingError(Refused):
    """A pairing action the technician asked for cannot be done; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__("pairing.unavailable", message)


class PairingState(StrEnum):
    OFF = "off"  # no [cloud] api_url: broker credentials are configured by hand
    UNPAIRED = "unpaired"  # no certificate yet; registering with the cloud
    WAITING = "waiting"  # registered; waiting for a company admin to claim the code
    PAIRED = "paired"  # a client certificate is configured


def has_certificate(mqtt: MqttConfig) -> bool:
    return bool(mqtt.tls and mqtt.cert_file and mqtt.key_file and mqtt.cert_file.exists())


class Pairing:
    name = "pairing"

    def __init__(
        self,
        runtime: Runtime,
        hardware: TillHardware,
        cloud: CloudPort,
        start_link: Callable[[], Awaitable[None]],
    ) -> None:
        """``start_link`` starts the cloud link once pairing installed the broker certificate."""
        self.runtime = runtime
        self.hardware = hardware
        self.cloud = cloud
        self.start_link = start_link
        self.config = runtime.config.cloud
        self.device_id = runtime.config.device_id
        self.needed = self.config.api_url is not None and not has_certificate(runtime.config.mqtt)
        if self.config.api_url is None:
            self.state = PairingState.OFF
        else:
            self.state = PairingState.UNPAIRED if self.needed else PairingState.PAIRED
        self.client = (
            PairingClient(self.config.api_url, self.config.ca_file, self.config.timeout_s)
            if self.config.api_url
            else None
        )
        self.code: str | None = None
        self.expires_at: datetime | None = None
        self.certificate: dict[str, str] | None = None
        self.last_error: str | None = None
        self.polls = 0
        self._interval = POLL_BOUNDS_S[0]  # what the cloud asked for, within POLL_BOUNDS_S
        self._rng = random.Random()
        self._cloud_http = LoopFailures(log, "pairing: cloud request")
        self._task: asyncio.Task[None] | None = None
        self.renewal: CertificateRenewal | None = None

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        if self.state == PairingState.PAIRED:
            self._describe_certificate()
            self._start_renewal()
        if self.needed:
            self._task = asyncio.create_task(self._run(), name="pairing")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.renewal is not None:
            await self.renewal.stop()

    def _start_renewal(self) -> None:
        mqtt = self.runtime.config.mqtt
        state_dir = self.runtime.config.paths.state_dir
        if self.client is None or self.renewal is not None or not renews(state_dir, mqtt.cert_file):
            return  # no cloud to ask, or a certificate configured by hand
        assert mqtt.cert_file is not None
        settings = RenewalSettings(
            state_dir,
            self.device_id,
            mqtt.cert_file,
            timedelta(days=self.config.certificate_renew_before_days),
            self.config.retry_min_s,
            self.config.retry_max_s,
        )
        self.renewal = CertificateRenewal(settings, self.client, self._use_renewed_certificate)
        self.renewal.start()

    def _use_renewed_certificate(self, certificate: x509.Certificate) -> None:
        self._describe_certificate(certificate)
        self.cloud.reload_certificate()  # a link not running yet reads the files when it starts

    def status(self) -> dict[str, Any]:
        shown = format_pairing_code(self.code) if self.code else None
        expires = self.expires_at.isoformat(timespec="minutes") if self.expires_at else None
        if self.state == PairingState.OFF:
            summary = "off: no [cloud] api_url; the broker certificate is configured by hand"
        elif self.state == PairingState.UNPAIRED:
            summary = f"unpaired: registering with {self.config.api_url}" + (f" (code {shown})" if shown else "")
        elif self.state == PairingState.WAITING:
            summary = f"waiting for claim (code {shown}), until {expires}"
        else:
            cert = self.certificate or {}
            summary = (
                f"paired: certificate for {cert.get('device', self.device_id)} valid until {cert.get('not_after', '?')}"
            )
        if self.last_error and self.state != PairingState.PAIRED:
            summary += f"; last error: {self.last_error}"
        return {
            "summary": summary,
            "state": self.state.value,
            "pairing_code": shown if self.state != PairingState.PAIRED else None,
            "expires_at": expires,
            "api_url": self.config.api_url,
            "last_error": self.last_error,
            "polls": self.polls,
            "certificate": self.certificate,
            "renewal": self.renewal.status() if self.renewal is not None else None,
        }

    # ------------------------------------------------------------------- flow
    async def _run(self) -> None:
        try:
            identity, broker_key, csr = await asyncio.to_thread(self._prepare)
        except (KeyFileError, OSError, StoreError) as exc:
            self._fail(f"cannot make the device keys: {exc}")
            return
        client = self.client
        assert client is not None and self.code is not None  # needed implies api_url; _prepare made the code
        registered = False
        failures = 0
        while True:
            try:
                if not registered:
                    request = registration_request(self.device_id, identity, csr, self.code, client.now())
                    self._waiting(await asyncio.to_thread(client.register, request))
                    registered = True
                else:
                    reply = await asyncio.to_thread(client.poll, poll_request(self.device_id, identity, client.now()))
                    self.polls += 1
                    if reply.state == RegistrationState.CLAIMED and reply.credentials is not None:
                        await self._install(reply, broker_key)
                        return
                    self._waiting(reply)
                failures = 0
                self._cloud_http.succeeded(api_url=self.config.api_url)
                delay = self._poll_delay()
            except PairingHttpError as exc:
                failures += 1
                self._cloud_http.succeeded(api_url=self.config.api_url)  # it answered: the connection works
                registered, delay = await self._refused(exc, failures, registered)
            except PairingNetworkError as exc:
                failures += 1
                self.last_error = str(exc)
                self._cloud_http.unreachable(str(exc), api_url=self.config.api_url)
                delay = self._backoff(failures)
            except (InstallError, ConfigError, KeyFileError, OSError) as exc:
                failures += 1
                self._fail(str(exc))
                delay = self._backoff(failures)
            await asyncio.sleep(delay)

    def _prepare(self) -> DeviceKeys:
        """Keys and CSR (made once, then reused) and the pairing code (kept in the store)."""
        keys = load_or_create_device_keys(self.runtime.config.paths.state_dir, self.device_id)
        stored = meta.get(self.runtime.store.read(), CODE_META_KEY)
        try:
            self.code = normalize_pairing_code(stored) if stored else None
        except PairingCodeError:
            self.code = None
        if self.code is None:
            self._new_code()
        # The code is a claim credential while it waits: shown on request (kassactl pairing), never logged.
        log.info(
            "pairing: registering with the cloud", extra={"device_id": self.device_id, "api_url": self.config.api_url}
        )
        return keys

    def _new_code(self) -> None:
        code = new_pairing_code()
        with self.runtime.store.transaction() as conn:
            meta.put(conn, CODE_META_KEY, code)
        self.code = code

    def _waiting(self, reply: Registration | PollReply) -> None:
        if self.state != PairingState.WAITING:
            log.info("pairing: registered; waiting for a company admin to claim the code (kassactl pairing shows it)")
        self.state = PairingState.WAITING
        self.expires_at = reply.expires_at
        self.last_error = None
        self._interval = min(max(reply.poll_interval_s, POLL_BOUNDS_S[0]), POLL_BOUNDS_S[1])

    async def _refused(self, exc: PairingHttpError, failures: int, registered: bool) -> tuple[bool, float]:
        """What to do after the cloud refused a request: (registered, delay before the next one)."""
        if exc.code == "pairing_code_taken":
            await asyncio.to_thread(self._new_code)  # another device waits with ours: make a new one
            log.info("pairing: another device waits with the same code; made a new one")
            return False, 0.0
        self._fail(
            exc.message
            if exc.code not in ("device_paired", "device_id_taken")
            else f"{exc.message} (check device_id in the config: it must be unique)"
        )
        # A poll the cloud cannot match to our key: our registration is gone (expired, and maybe
        # another key registered the id since). Registering again says which.
        if exc.code in ("not_registered", "registration_expired") or (exc.code == "bad_signature" and registered):
            self.state, self.expires_at = PairingState.UNPAIRED, None
            return False, self._backoff(failures, cap=5.0)
        if exc.code == "rate_limited" and exc.retry_after_s:
            return registered, min(exc.retry_after_s, self.config.retry_max_s)
        return registered, self._backoff(failures)

    async def _install(self, reply: PollReply, broker_key: Any) -> None:
        assert reply.credentials is not None and self.client is not None
        if self.runtime.config_path is None:
            raise ConfigError("the agent runs without a config file: nowhere to save the broker settings")
        checked = await asyncio.to_thread(
            check_credentials, reply.credentials, self.device_id, broker_key, self.client.now()
        )
        changes = await asyncio.to_thread(install, self.runtime.config.paths.state_dir, checked)
        new = await asyncio.to_thread(set_values, self.runtime.config_path, changes)
        self.runtime.config.mqtt = new.mqtt
        self.runtime.config.site.point_of_sale = new.site.point_of_sale
        self.state, self.needed, self.last_error, self.expires_at = PairingState.PAIRED, False, None, None
        self._describe_certificate(checked.certificate)
        log.info(
            "pairing: paired; starting the cloud link",
            extra={
                "broker": f"{new.mqtt.host}:{new.mqtt.port}",
                "point_of_sale": new.site.point_of_sale or "-",
                "not_after": checked.not_after.isoformat(),
            },
        )
        await self.start_link()
        self._start_renewal()

    def _describe_certificate(self, certificate: x509.Certificate | None = None) -> None:
        cert_file = self.runtime.config.mqtt.cert_file
        try:
            if certificate is None and cert_file is not None:
                certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
        except (OSError, ValueError) as exc:
            self.certificate = {"file": str(cert_file), "error": str(exc)}
            return
        if certificate is not None:
            names = certificate.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
            self.certificate = {
                "device": str(names[0].value) if names else "?",
                "file": str(cert_file),
                "serial": format(certificate.serial_number, "x"),
                "not_after": certificate.not_valid_after_utc.date().isoformat(),
            }

    # ---------------------------------------------------------------- helpers
    def _fail(self, message: str) -> None:
        if message != self.last_error:
            log.warning("pairing: request failed; will retry", extra={"error": message})
        self.last_error = message

    def _backoff(self, failures: int, cap: float | None = None) -> float:
        return retry_delay(failures, self.config.retry_min_s, self.config.retry_max_s, self._rng, cap)

    def _poll_delay(self) -> float:
        return self._interval * self._rng.uniform(0.9, 1.1)

    # ----------------------------------------------------------- technician
    def print_code(self, printer: str | None = None) -> str:
        """Queue a slip with the pairing code on a receipt printer; returns the print job id."""
        if self.state == PairingState.PAIRED:
            raise PairingError("this terminal is already paired")
        if self.code is None:
            raise PairingError("no pairing code yet: set [cloud] api_url and wait for the first registration")
        if not printer and self.hardware.receipt_printer is None:
            raise PairingError("no printer is configured; read the code with `kassactl pairing`")
        slip = pairing_slip(
            self.device_id, format_pairing_code(self.code), self.expires_at, self.runtime.config.site.language
        )
        return self.hardware.queue_receipt(slip, kind="pairing", printer=printer).job_id
