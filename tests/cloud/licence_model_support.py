"""The simulated devices of tests/cloud/test_licence_model.py, the company ownership it
checks, and the deliberate bugs (mutations) its self-check plants to prove the model catches
them.

`SimDevice` keeps exactly what the agent keeps (agent/licence/docs.py, release.py,
component.py): held leases with their monotonic start, highest epochs, tombstones with
receipts (confirmed once a later document no longer lists them), the applied document
version, the wall-clock high-water mark (persisted trailing memory). Its clocks: wall =
cloud time + skew, monotonic = seconds since this boot. Sales go through
`agent.licence.lease.sale_verdict`, looked up at call time so a mutation can replace it.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest

from agent.licence import lease as agent_lease
from agent.licence.lease import HeldLease, LeaseRefused, Refusal, Verdict, accept_token
from broker import contract as kc
from cloud_api.licences import binding
from cloud_api.licences.models import Licence, LicenceAction, LicenceState
from cloud_api.licences.records import record_event
from tests.cloud.licence_support import T0, DeviceKey

HIGH_WATER_PERSIST_S = 60.0  # agent: the persisted high-water mark trails memory by at most this


@dataclasses.dataclass
class SimDevice:
    key: DeviceKey
    skew_s: float = 0.0
    boot_at: float = 0.0  # cloud seconds when this boot started
    boot_id: uuid.UUID = dataclasses.field(default_factory=uuid.uuid4)
    seq: int = 0
    powered: bool = True
    on_at: float = 0.0  # powered off until then
    cut_until: float = 0.0  # network partition (both directions) until then
    outbox: list[kc.Body] = dataclasses.field(default_factory=list)  # queued while disconnected
    next_report_s: float = 0.0
    held: dict[str, HeldLease] = dataclasses.field(default_factory=dict)
    highest_epoch: dict[str, int] = dataclasses.field(default_factory=dict)
    tombstones: dict[tuple[str, int], tuple[str, float, bool]] = dataclasses.field(default_factory=dict)
    doc_version: int = 0
    high_water: float = 0.0
    persisted_high_water: float = 0.0
    keep_skew: bool = False  # the next boot keeps the skew the adversary chose

    @property
    def device_id(self) -> str:
        return self.key.device_id

    def wall(self, cloud_s: float) -> float:
        return T0.timestamp() + cloud_s + self.skew_s

    def mono(self, cloud_s: float) -> float:
        return cloud_s - self.boot_at

    def connected(self, cloud_s: float) -> bool:
        return self.powered and cloud_s >= self.cut_until

    def see_time(self, cloud_s: float) -> None:
        """The agent raises its high-water mark on every sale check and once a minute."""
        if not self.powered:
            return
        self.high_water = max(self.high_water, self.wall(cloud_s))
        if self.high_water - self.persisted_high_water >= HIGH_WATER_PERSIST_S:
            self.persisted_high_water = self.high_water

    def power_off(self) -> None:
        self.powered = False

    def boot(self, cloud_s: float, skew_s: float) -> None:
        """Power on: the monotonic clock restarts, the persisted state is loaded again."""
        if self.keep_skew:
            skew_s, self.keep_skew = self.skew_s, False
        self.powered, self.boot_at, self.boot_id, self.skew_s = True, cloud_s, uuid.uuid4(), skew_s
        self.held = {lid: HeldLease(h.claims, h.token, None, h.released) for lid, h in self.held.items()}
        self.high_water = max(self.persisted_high_water, self.wall(cloud_s))
        self.persisted_high_water = self.high_water

    # ------------------------------------------------------------ as agent/licence/docs.py
    def apply_doc(self, version: int, tokens: list[str], trusted, cloud_s: float) -> kc.LeaseReport | None:
        if version <= self.doc_version:
            return None  # an older (retained, delayed) copy: ignored by version
        self.doc_version = version
        now_wall, now_mono = self.wall(cloud_s), self.mono(cloud_s)
        accepted: dict[str, tuple] = {}
        for token in tokens:
            try:
                claims = accept_token(
                    token,
                    device_id=self.device_id,
                    device_key=self.key.fingerprint,
                    trusted_keys=trusted,
                    highest_epoch=0,
                    now_wall=now_wall,
                )
                if claims.epoch < self.highest_epoch.get(claims.licence_id, 0):
                    raise LeaseRefused(Refusal.OLD_EPOCH)
                if (claims.licence_id, claims.epoch) in self.tombstones:
                    raise LeaseRefused(Refusal.RELEASED)
            except LeaseRefused:
                continue
            best = accepted.get(claims.licence_id)
            if best is None or (claims.epoch, claims.expires_at) > (best[0].epoch, best[0].expires_at):
                accepted[claims.licence_id] = (claims, token)
        leases: dict[str, HeldLease] = {}
        for licence_id, (claims, token) in accepted.items():
            held = self.held.get(licence_id)
            if held is not None and held.token == token and not held.released:
                leases[licence_id] = held  # the same lease again: its monotonic start stays
                continue
            self.highest_epoch[licence_id] = max(self.highest_epoch.get(licence_id, 0), claims.epoch)
            leases[licence_id] = HeldLease(claims, token, now_mono, False)
        for licence_id, held in self.held.items():
            if licence_id not in leases:
                if not held.released:  # missing from a newer document: taken away
                    self._add_tombstone(licence_id, held.claims.epoch, now_wall)
                    held = dataclasses.replace(held, released=True)
                leases[licence_id] = held
        self.held = leases
        listed = {(claims.licence_id, claims.epoch) for claims, _ in accepted.values()}
        for stone_key, (receipt, released_at, confirmed) in list(self.tombstones.items()):
            if not confirmed and released_at < now_wall and stone_key not in listed:
                self.tombstones[stone_key] = (receipt, released_at, True)
        return self.report()  # the report doubles as the ack of a grant

    def _add_tombstone(self, licence_id: str, epoch: int, now_wall: float) -> str:
        at = T0 + timedelta(seconds=now_wall - T0.timestamp())
        receipt = self.key.receipt(licence_id, epoch, at)
        self.tombstones[(licence_id, epoch)] = (receipt, now_wall, False)
        self.highest_epoch[licence_id] = max(self.highest_epoch.get(licence_id, 0), epoch)
        return receipt

    # --------------------------------------------------------- as agent/licence/release.py
    def release(self, licence_id: str, epoch: int, cloud_s: float) -> str | None:
        """The licence.release command; None: never held here (the agent answers not_held)."""
        held = self.held.get(licence_id)
        if held is not None and not held.released and held.claims.epoch <= epoch:
            self.held[licence_id] = dataclasses.replace(held, released=True)
        stone = self.tombstones.get((licence_id, epoch))
        if stone is not None:
            return stone[0]
        if licence_id not in self.highest_epoch:
            return None
        return self._add_tombstone(licence_id, epoch, self.wall(cloud_s))

    # ------------------------------------------------------- as agent/licence/component.py
    def verdict(self, licence_id: str, cloud_s: float) -> Verdict:
        return agent_lease.sale_verdict(
            self.held.get(licence_id),
            now_wall=self.wall(cloud_s),
            now_mono=self.mono(cloud_s),
            wall_high_water=self.high_water,
        )

    def can_sell(self, licence_id: str, cloud_s: float) -> bool:
        return self.powered and self.verdict(licence_id, cloud_s).ok

    def report(self) -> kc.LeaseReport:
        leases = [
            kc.HeldLease(
                licence_id=lid,
                epoch=h.claims.epoch,
                lease_expires_at=T0 + timedelta(seconds=h.claims.expires_at - T0.timestamp()),
            )
            for lid, h in sorted(self.held.items())
            if not h.released
        ]
        stones = [
            kc.Tombstone(licence_id=lid, epoch=epoch, receipt=receipt)
            for (lid, epoch), (receipt, _at, confirmed) in sorted(self.tombstones.items())
            if not confirmed
        ]
        return kc.LeaseReport(kind="lease_report", leases=leases, tombstones=stones)

    def describe(self, licence_id: str, cloud_s: float) -> str:
        held = self.held.get(licence_id)
        lease = (
            "none"
            if held is None
            else (
                f"epoch {held.claims.epoch} expires {held.claims.expires_at - T0.timestamp():.0f}"
                f"{' released' if held.released else ''}"
                f" mono {'-' if held.received_mono is None else f'{held.received_mono:.0f}'}"
            )
        )
        return (
            f"{self.device_id}[{lease}; skew {self.skew_s:+.0f}, boot {self.boot_at:.0f}, "
            f"{'on' if self.powered else 'off'}, cut until {self.cut_until:.0f}]"
        )


class Violation(AssertionError):
    """An invariant of the licence model broken (the message names the seed)."""


@dataclasses.dataclass
class Ownership:
    """Which company holds each licence, and the only ways that may change (checked after every
    cloud transaction): the first binding of the partner's unsealed stock gives it to the
    device's company; the holder's release gives it back to the stock. Wherever a licence is
    bound or moving, it is with a device of its holder; a device sells only under a licence its
    company holds in the cloud (the stock's licences under none)."""

    company_of: dict[str, int]  # device id -> its company
    holder: dict[str, int | None]  # licence id -> holder company as the cloud last said (None: the stock)
    released_by: dict[str, int] = dataclasses.field(default_factory=dict)  # released, not yet back in the stock

    def released(self, licence_id: str, company_id: int) -> None:
        self.released_by[licence_id] = company_id

    def observe(self, licence: Licence, where: str) -> str | None:
        """One licence row after a cloud transaction: Violation, or what changed hands (a stat name)."""
        before, after = self.holder[licence.id], licence.company_id
        change = None
        if after != before:
            if before is None and licence.state == LicenceState.BOUND and self.company_of[licence.device_id] == after:
                change = "stock_bound"
            elif after is None and before is not None and self.released_by.get(licence.id) == before:
                del self.released_by[licence.id]
                change = "returned"
            else:
                raise Violation(
                    f"{where}: licence {licence.id} went from company {before} to company {after} "
                    f"({licence.state}, {licence.device_id}) without the owning company's release"
                )
            self.holder[licence.id] = after
        with_devices = []
        if licence.state in (LicenceState.BOUND, LicenceState.RELEASING):
            with_devices = [licence.device_id, licence.releasing_to_device_id]
        for device_id in with_devices:
            if device_id is not None and self.company_of[device_id] != after:
                raise Violation(
                    f"{where}: licence {licence.id} of company {after} is {licence.state} with "
                    f"{device_id} of company {self.company_of[device_id]}"
                )
        return change

    def check_seller(self, licence_id: str, device_id: str, where: str) -> None:
        holder = self.holder[licence_id]
        if self.company_of[device_id] != holder:
            held = "the partner's stock" if holder is None else f"company {holder}"
            raise Violation(
                f"{where}: {device_id} of company {self.company_of[device_id]} can sell under licence "
                f"{licence_id}, which the cloud gives to {held}"
            )


@dataclasses.dataclass(order=True)
class Packet:
    deliver_at: float
    order: int
    device_id: str = dataclasses.field(compare=False)
    up: kc.Body | None = dataclasses.field(default=None, compare=False)  # device -> cloud
    doc: tuple[int, list[str]] | None = dataclasses.field(default=None, compare=False)  # cloud -> device
    release: tuple[str, int, float] | None = dataclasses.field(
        default=None, compare=False
    )  # licence, epoch, expires (s)


# ------------------------------------------------------------------------ mutations
# Each plants one bug in the cloud licence book or in the device's sale check. The model
# must find a violation of an invariant for every one of them.


def _wrap_request_move(monkeypatch: pytest.MonkeyPatch, after: Callable) -> None:
    original = binding.request_move

    def mutated(session, licence, target, now, policy, actor):
        was_bound = licence.state == LicenceState.BOUND
        original(session, licence, target, now, policy, actor)
        if was_bound:
            after(session, licence, now, policy, actor)

    monkeypatch.setattr(binding, "request_move", mutated)


def deadline_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep grants at its next pass: deadline = now instead of last expiry + margin."""

    def after(session, licence, now, policy, actor):
        licence.release_deadline = now

    _wrap_request_move(monkeypatch, after)


def no_margin(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep grants at the old lease's expiry, without the clock margin."""

    def after(session, licence, now, policy, actor):
        licence.release_deadline -= timedelta(seconds=policy.clock_margin_s)

    _wrap_request_move(monkeypatch, after)


def grant_without_receipt(monkeypatch: pytest.MonkeyPatch) -> None:
    """The new device is granted at once, without waiting for a receipt or the deadline."""

    def after(session, licence, now, policy, actor):
        binding.grant_to_target(
            session,
            licence,
            now,
            policy,
            actor=actor,
            action=LicenceAction.RELEASED,
            detail="mutant: granted without a receipt",
        )

    _wrap_request_move(monkeypatch, after)


def no_release_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    """A move tells the old device nothing: no release order, no new document. Safe (the
    deadline still holds) but every move waits a whole lease: caught by the calm-move check."""
    original = binding.request_move
    publish, moving = binding.publish_doc, []

    def mutated(*args, **kwargs):
        moving.append(True)
        try:
            return original(*args, **kwargs)
        finally:
            moving.pop()

    monkeypatch.setattr(binding, "request_move", mutated)
    monkeypatch.setattr(binding, "create_command", lambda *args, **kwargs: None)
    monkeypatch.setattr(binding, "publish_doc", lambda *args, **kwargs: None if moving else publish(*args, **kwargs))


def bind_ignores_company(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue #16: a key typed on another company's terminal binds there (or moves there)."""
    monkeypatch.setattr(binding, "refuse_other_company", lambda licence, device: None)


def release_skips_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """The company's release puts a bound licence back in the partner's stock at once, without
    waiting for its terminal to let go (the document still drops the lease)."""
    original = binding.request_move

    def mutated(session, licence, target, now, policy, actor):
        if target is not None or licence.state != LicenceState.BOUND:
            return original(session, licence, target, now, policy, actor)
        old_device_id = licence.device_id
        licence.state, licence.device_id, licence.company_id, licence.lease_token = (
            LicenceState.ASSIGNED,
            None,
            None,
            None,
        )
        record_event(
            session,
            licence,
            actor=actor,
            action=LicenceAction.RETURNED,
            from_state=LicenceState.BOUND,
            from_device_id=old_device_id,
            now=now,
            detail="mutant: returned at once",
        )
        binding.publish_doc(session, old_device_id, now)
        return None

    monkeypatch.setattr(binding, "request_move", mutated)


def _verdict_without(check: str) -> Callable[[pytest.MonkeyPatch], None]:
    real = agent_lease.sale_verdict

    def plant(monkeypatch: pytest.MonkeyPatch) -> None:
        def mutated(lease, *, now_wall, now_mono, wall_high_water):
            if lease is not None and check == "released":
                lease = dataclasses.replace(lease, released=False)
            if lease is not None and check == "monotonic":
                lease = dataclasses.replace(lease, received_mono=None)
            verdict = real(lease, now_wall=now_wall, now_mono=now_mono, wall_high_water=wall_high_water)
            if (
                check == "wall_expiry"
                and verdict.code == Refusal.EXPIRED
                and lease is not None
                and (lease.received_mono is None or now_mono - lease.received_mono < lease.claims.lifetime_s)
            ):
                return Verdict(True, "ok", "mutant", lease.claims.licence_id, lease.claims.expires_at)
            return verdict

        monkeypatch.setattr(agent_lease, "sale_verdict", mutated)

    plant.__doc__ = f"The device's sale check ignores the {check.replace('_', ' ')} check."
    return plant


verdict_ignores_released = _verdict_without("released")
verdict_ignores_wall_expiry = _verdict_without("wall_expiry")
# Not in MUTATIONS: with every wall clock within the clock margin (the protocol's assumption),
# the wall-clock expiry alone already stops a device by the deadline, so this mutant is
# equivalent; the monotonic check guards against clocks set back beyond the margin.
verdict_ignores_monotonic = _verdict_without("monotonic")

MUTATIONS = {
    "deadline_now": deadline_now,
    "no_margin": no_margin,
    "grant_without_receipt": grant_without_receipt,
    "no_release_channel": no_release_channel,
    "verdict_ignores_released": verdict_ignores_released,
    "verdict_ignores_wall_expiry": verdict_ignores_wall_expiry,
    "bind_ignores_company": bind_ignores_company,
    "release_skips_the_device": release_skips_the_device,
}
