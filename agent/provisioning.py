"""Configuration by QR code: scan the administrator's code with the terminal's own scanner.

Every scan is checked: a code that starts like a configuration code but is not
signed by a pinned cloud key (tampered, foreign, expired, or older than the
last one applied) is ignored and logged. A good one is written to the config
file (validated, atomically) and applied; broker changes need a restart, which
status reports.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from functools import partial
from typing import Any

from agent import meta
from agent.config import ConfigError
from agent.config_edit import set_values
from agent.runtime import Runtime
from broker import contract as kc
from broker.contract.signing import load_public_key

log = logging.getLogger(__name__)

LAST_ISSUED_KEY = "provisioning_issued_at"


class Provisioner:
    name = "provisioning"

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.applied = 0
        self.refused = 0
        self.last_result: dict[str, Any] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        subscription = self.runtime.events.subscribe({"scan"})
        self._task = asyncio.create_task(self._watch(subscription), name="provisioning")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def status(self) -> dict[str, Any]:
        return {
            "summary": (
                f"{self.applied} code(s) applied, {self.refused} refused; "
                f"{len(self.runtime.config.trust.cloud_keys)} cloud key(s) pinned"
            ),
            "applied": self.applied,
            "refused": self.refused,
            "last": self.last_result,
        }

    async def _watch(self, subscription: Any) -> None:
        try:
            while True:
                event = await subscription.next()
                scanned = str(event.data.get("data", ""))
                if kc.looks_like_provisioning(scanned):
                    try:
                        await asyncio.to_thread(self.apply, scanned)
                    except Exception:  # a bug here must not stop watching for the next code
                        log.exception("configuration code handling failed")
        finally:
            subscription.close()

    def apply(self, scanned: str) -> dict[str, Any]:
        """Check and apply one scanned code; never raises (a bad code is a log line, not a crash)."""
        try:
            keys = {kid: load_public_key(text) for kid, text in self.runtime.config.trust.cloud_keys.items()}
            settings = kc.read_qr_text(scanned, keys)
            self._check_newer(settings.issued_at)
            result = self._write(settings)
        except (kc.ProvisioningError, ConfigError) as exc:
            self.refused += 1
            self.last_result = {"ok": False, "reason": str(exc)}
            log.warning("configuration code ignored", extra={"reason": str(exc)})
            self.runtime.call_from_thread(
                partial(self.runtime.events.publish, "provisioning", ok=False, reason=str(exc))
            )
            return self.last_result
        self.applied += 1
        self.last_result = {"ok": True, **result}
        log.info(
            "configuration code applied",
            extra={"keys": ",".join(result["changed"]), "restart_needed": ",".join(result["restart_needed"]) or "-"},
        )
        self.runtime.call_from_thread(
            partial(
                self.runtime.events.publish,
                "provisioning",
                ok=True,
                changed=result["changed"],
                restart_needed=result["restart_needed"],
            )
        )
        return self.last_result

    def _check_newer(self, issued_at: datetime) -> None:
        last = meta.get(self.runtime.store.read(), LAST_ISSUED_KEY)
        if last is not None and issued_at.isoformat() <= last:
            raise kc.ProvisioningError(
                f"configuration code issued {issued_at.isoformat()} is not newer than the one applied ({last})"
            )

    def _write(self, settings: kc.Provisioning) -> dict[str, Any]:
        if self.runtime.config_path is None:
            raise ConfigError("the agent runs without a config file; nothing to write the settings to")
        mapping = {
            "site.point_of_sale": settings.point_of_sale,
            "site.language": settings.language,
            "site.scanner": settings.scanner,
            "site.rooms": settings.rooms,
            "mqtt.host": settings.broker_host,
            "mqtt.port": settings.broker_port,
        }
        changes = {key: value for key, value in mapping.items() if value is not None}
        if changes:
            set_values(self.runtime.config_path, changes)
        with self.runtime.store.transaction() as conn:
            meta.put(conn, LAST_ISSUED_KEY, settings.issued_at.isoformat())
        reload = self.runtime.run_on_loop(self.runtime.reload_config)
        return {"changed": sorted(changes), "restart_needed": [k for k in changes if k in reload["restart_needed"]]}
