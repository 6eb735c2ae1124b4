"""Model-based randomised test of the licence book: the real cloud (the ingest's apply_batch,
the sweeper, the push documents and release commands it leaves, a company's release through
book.release_to_partner) on a SQLite file, five simulated devices of three companies that keep
their lease state exactly as the agent does (tests/cloud/licence_model_support.py), licences
assigned to a company and unsealed in the partner's stock, and a hostile world:

- a lossy, duplicating, reordering downlink; an uplink that is late but never loses (the
  agent's outbox resends until acked); retained documents and open commands come again on
  reconnect, older document versions arrive late and must be ignored by version;
- network partitions (both directions) short and longer than a lease, above all of the old
  device right when a move starts; power cycles (monotonic clock restarts, state persists);
- wall-clock skew of each device anywhere within the clock margin, both directions;
- cloud time in small and big jumps; the sweeper runs every 15 s but sometimes pauses;
- keys typed on other companies' terminals; companies releasing their licences to the
  partner's stock (bound, moving or free; often right when the terminal drops off the network).

Invariants, after every event: no two powered devices can sell under one licence
(`sale_verdict(...).ok` on each device's own clocks), and a device sells only under a licence
its company holds. After every cloud transaction: a licence never changes company without the
owning company's release (or the first binding of unsealed partner stock), and it is bound or
moving only to devices of its company. At the end, with the network healed and every deadline
past, each licence is bound (its device can sell) or free: never stuck. In calm weather a move
completes in seconds (release order or document, receipt, grant), another company's terminal
takes nothing, and a company's release returns the licence to the stock in seconds, for
another company's terminal to bind.

A mutation self-check plants deliberate bugs and requires the model to find each of them.
Seeds are printed; rerun one with KASSA_LICENCE_SEED=<n>.
"""

from __future__ import annotations

import contextlib
import os
import random
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from broker import contract as kc
from cloud_api.ingest.apply import apply_batch
from cloud_api.licences import binding, book
from cloud_api.licences.models import Licence, LicenceState
from cloud_api.licences.policy import use_policy
from cloud_api.licences.records import LicenceRefused
from cloud_api.licences.sweeper import sweep
from cloud_api.pushes.models import DesiredState, DeviceCommand
from tests.cloud.licence_model_support import MUTATIONS, Ownership, Packet, SimDevice, Violation
from tests.cloud.licence_support import LEASE_S, MARGIN_S, RENEW_S, T0, LicenceDb, licence_database

STEPS = 220
DEFAULT_SEEDS = [11, 23, 47, 101, 202, 303]
SEEDS = [int(os.environ["KASSA_LICENCE_SEED"])] if "KASSA_LICENCE_SEED" in os.environ else DEFAULT_SEEDS
SWEEP_S = 15.0  # LicenceSweeper's default period
RESEND_S = 30.0  # the publisher resends open commands
CALM_MOVE_S = 30.0  # a move between two connected devices completes within this in calm weather
TILLS = {"a": ("till-a1", "till-a2"), "b": ("till-b1", "till-b2"), "c": ("till-c1",)}  # company -> its devices


class World:
    def __init__(self, db: LicenceDb, rng: random.Random, keys: list[tuple[str, str]], seed: int) -> None:
        self.db, self.rng, self.keys, self.seed = db, rng, keys, seed
        self.policy, self.trusted = db.policy, db.trusted
        self.now_s, self.step_no, self.order = 0.0, 0, 0
        companies = {"a": db.company_id, "b": db.other_company_id, "c": db.third_company_id}
        company_of = {device_id: companies[name] for name, tills in TILLS.items() for device_id in tills}
        self.devices = {
            device_id: SimDevice(db.add_device(device_id, company)) for device_id, company in company_of.items()
        }
        self.ownership = Ownership(
            company_of, {licence_id: db.licence(licence_id).company_id for licence_id, _ in keys}
        )
        self.network: list[Packet] = []
        self.docs: dict[str, list[tuple[int, list[str]]]] = {d: [] for d in self.devices}  # every version sent
        self.commands: dict[object, tuple[str, str, int, float]] = {}  # id -> device, licence, epoch, expires
        self.next_sweep_s, self.sweeper_down_until, self.next_resend_s = SWEEP_S, 0.0, RESEND_S
        self.releasing_due: float | None = None  # earliest release deadline (cloud s), None: nothing releasing
        self.calm = False  # no loss, short delays
        self.stats = {
            "moves": 0,
            "partitioned_moves": 0,
            "sold": set(),
            "releases": 0,
            "returned": 0,
            "stock_bound": 0,
            "refused": {},
        }

    @property
    def now(self):
        return T0 + timedelta(seconds=self.now_s)

    @property
    def where(self) -> str:
        return f"seed {self.seed} step {self.step_no} t={self.now_s:.1f} (rerun: KASSA_LICENCE_SEED={self.seed})"

    def company_devices(self, company_id: int | None, *, other: bool = False) -> list[str]:
        """The devices of a company (`other`: of every other company), in a stable order."""
        return sorted(d for d, c in self.ownership.company_of.items() if (c == company_id) != other)

    # ------------------------------------------------------------------ the cloud
    def cloud_receive(self, device_id: str, body: kc.Body) -> None:
        device = self.devices[device_id]
        device.seq += 1
        envelope = kc.up_message(
            body, device_id=device_id, seq=device.seq, boot_id=device.boot_id, clock_trusted=True, created_at=self.now
        )
        publication = kc.publication(envelope)
        with Session(self.db.engine) as session, session.begin():
            plan = apply_batch(
                session, [kc.parse_message(publication.topic, publication.payload)], received_at=self.now
            )
        for rejection in plan.device(device_id).rejected.values():
            self.stats["refused"][rejection.reason] = self.stats["refused"].get(rejection.reason, 0) + 1
        self.publish()

    def cloud_sweep(self) -> None:
        with Session(self.db.engine) as session, session.begin():
            sweep(session, self.now, self.policy)
        self.publish()

    def company_release(self, licence_id: str) -> None:
        """The holder company's admin releases the licence to the partner's stock (the API's
        POST /licences/{id}/release-to-partner)."""
        holder = self.ownership.holder[licence_id]
        if holder is None:
            return
        with Session(self.db.engine) as session, session.begin():
            book.release_to_partner(
                session, licence_id, holder, by_user=self.db.admin_user_id, now=self.now, policy=self.policy
            )
        self.ownership.released(licence_id, holder)
        self.stats["releases"] += 1
        self.publish()

    def publish(self, resend_to: str | None = None) -> None:
        """The publisher: new document versions, new release commands (all of them again for
        `resend_to`: retained document and open commands on reconnect). Every cloud
        transaction ends here, so the licences' companies are checked here too."""
        with Session(self.db.engine) as session:
            # One select for both uses below; the run's licences are the only rows.
            licences = {licence.id: licence for licence in session.scalars(select(Licence))}
            for licence_id, _key in self.keys:
                change = self.ownership.observe(licences[licence_id], self.where)
                if change is not None:
                    self.stats[change] += 1
            for row in session.scalars(
                select(DesiredState).where(DesiredState.domain == "licence").order_by(DesiredState.device_id)
            ):
                sent = self.docs[row.device_id]
                if not sent or row.version > sent[-1][0]:
                    sent.append((row.version, list(row.doc["leases"])))
                    self.send_down(Packet(0, 0, row.device_id, doc=sent[-1]))
                elif resend_to == row.device_id:
                    self.send_down(Packet(0, 0, row.device_id, doc=sent[-1]))
            for command in session.scalars(
                select(DeviceCommand)
                .where(DeviceCommand.name == "licence.release")
                .order_by(DeviceCommand.created_at, DeviceCommand.device_id)
            ):
                expires = (command.expires_at.replace(tzinfo=T0.tzinfo) - T0).total_seconds()
                if command.command_id not in self.commands:
                    self.commands[command.command_id] = (
                        command.device_id,
                        command.args["licence_id"],
                        command.args["epoch"],
                        expires,
                    )
                    self.send_down(Packet(0, 0, command.device_id, release=self.commands[command.command_id][1:]))
            releasing = min(
                (
                    licence.release_deadline
                    for licence in licences.values()  # as SQL MIN: NULLs left out
                    if licence.state == LicenceState.RELEASING and licence.release_deadline is not None
                ),
                default=None,
            )
            self.releasing_due = (
                None if releasing is None else ((releasing.replace(tzinfo=T0.tzinfo) - T0).total_seconds())
            )
        if resend_to is not None:
            self.resend_commands(resend_to)

    def resend_commands(self, device_id: str | None = None) -> None:
        for device, licence_id, epoch, expires in self.commands.values():
            if (device_id is None or device == device_id) and self.now_s < expires:
                self.send_down(Packet(0, 0, device, release=(licence_id, epoch, expires)))

    # ---------------------------------------------------------------- the network
    def latency(self) -> float:
        if self.calm:
            return self.rng.uniform(0.05, 0.5)
        return self.rng.uniform(0.05, 2.0) if self.rng.random() < 0.85 else self.rng.uniform(2.0, 45.0)

    def enqueue(self, packet: Packet, delay: float) -> None:
        self.order += 1
        packet.deliver_at, packet.order = self.now_s + delay, self.order
        self.network.append(packet)

    def send_down(self, packet: Packet) -> None:
        fate = self.rng.random()
        if not self.calm and fate < 0.08:
            return  # lost
        if not self.calm and fate > 0.92:  # duplicated, the copy late
            self.enqueue(Packet(0, 0, packet.device_id, None, packet.doc, packet.release), self.rng.uniform(1, 90))
        self.enqueue(packet, self.latency())

    def send_up(self, device: SimDevice, body: kc.Body) -> None:
        if not device.connected(self.now_s):
            device.outbox.append(body)  # the outbox keeps it until the link is back
            return
        if not self.calm and self.rng.random() < 0.08:  # resent by the outbox: the first copy also arrives
            self.enqueue(Packet(0, 0, device.device_id, up=body), self.rng.uniform(1, 60))
        self.enqueue(Packet(0, 0, device.device_id, up=body), self.latency())

    def deliver(self, packet: Packet) -> None:
        device = self.devices[packet.device_id]
        if packet.up is not None:
            self.cloud_receive(packet.device_id, packet.up)
            return
        if not device.connected(self.now_s):
            if self.rng.random() < 0.5:  # held by the broker, delivered late after the reconnect
                self.enqueue(packet, max(device.on_at, device.cut_until) - self.now_s + self.rng.uniform(0, 60))
            return
        if packet.doc is not None:
            report = device.apply_doc(*packet.doc, self.trusted, self.now_s)
            if report is not None:
                self.send_up(device, report)
        elif packet.release is not None:
            licence_id, epoch, expires = packet.release
            if device.wall(self.now_s) > T0.timestamp() + expires:
                return  # the agent refuses an expired command (by its own clock)
            receipt = device.release(licence_id, epoch, self.now_s)
            if receipt is not None:
                self.send_up(
                    device,
                    kc.ReleaseReceipt(kind="release_receipt", licence_id=licence_id, epoch=epoch, receipt=receipt),
                )

    def reconnect(self, device: SimDevice) -> None:
        """The link is back: the outbox flushes, a report goes up, retained doc and open commands come."""
        queued, device.outbox = device.outbox, []
        for body in queued:
            self.send_up(device, body)
        self.send_up(device, device.report())
        device.next_report_s = self.now_s + RENEW_S
        self.publish(resend_to=device.device_id)

    # --------------------------------------------------------------------- time
    def run_until(self, target: float) -> None:
        """Let time pass to `target`, running every timed event in order, checking after each."""
        while True:
            times = [target, self.next_resend_s]
            if self.now_s >= self.sweeper_down_until:
                times.append(self.next_sweep_s)
            for device in self.devices.values():
                times += [
                    device.on_at
                    if not device.powered
                    else device.cut_until
                    if device.cut_until > self.now_s
                    else device.next_report_s
                ]
            if self.network:
                times.append(min(self.network).deliver_at)
            self.now_s = max(self.now_s, min(times))
            self.timed_events()
            self.check()
            if self.now_s >= target:
                return

    def timed_events(self) -> None:
        now = self.now_s
        for device in self.devices.values():
            if not device.powered and now >= device.on_at:
                device.boot(now, self.pick_skew())
                if device.connected(now):
                    device.cut_until = 0.0
                    self.reconnect(device)
            elif device.powered and device.cut_until and now >= device.cut_until:
                device.cut_until = 0.0
                self.reconnect(device)
            elif device.connected(now) and now >= device.next_report_s:
                device.next_report_s = now + RENEW_S
                self.send_up(device, device.report())
            device.see_time(now)
        due = sorted(p for p in self.network if p.deliver_at <= now)
        for packet in due:
            self.network.remove(packet)
            self.deliver(packet)
        if now >= self.next_sweep_s:
            self.next_sweep_s = now + SWEEP_S
            # A sweep with nothing due changes nothing; skip most of those (time), never a due one.
            if (self.releasing_due is not None and self.releasing_due <= now) or self.rng.random() < 0.1:
                self.cloud_sweep()
        if now >= self.next_resend_s:
            self.next_resend_s = now + RESEND_S
            self.resend_commands()

    # ------------------------------------------------------------------- events
    def pick_skew(self) -> float:
        return self.rng.choice(
            [-MARGIN_S, -MARGIN_S, -0.8 * MARGIN_S, 0.0, MARGIN_S, self.rng.uniform(-MARGIN_S, MARGIN_S)]
        )

    def bound_licences(self) -> list[tuple[str, str, str]]:
        with Session(self.db.engine) as session:
            rows = [session.get(Licence, lid) for lid, _key in self.keys]
            return [(row.id, row.licence_key, row.device_id) for row in rows if row.state == LicenceState.BOUND]

    def bind_request(self, device: SimDevice, key: str) -> None:
        self.send_up(
            device,
            kc.BindRequest(kind="bind_request", licence_key=key.lower(), device_public_key=device.key.public_text),
        )

    def partition(self, device: SimDevice, duration: float) -> None:
        device.cut_until = max(device.cut_until, self.now_s + duration)

    def power_cycle(self, device: SimDevice, off_s: float) -> None:
        if device.powered:
            device.power_off()
            device.on_at = self.now_s + off_s

    def move(self) -> None:
        """THE scenario: a move starts (to another device of the company, or released by the
        company to the partner's stock), and often the old device drops off the network right
        then, for longer than a lease, with its clock behind and a reboot on the way."""
        rng = self.rng
        bound = self.bound_licences()
        if not bound:
            return
        licence_id, key, old_id = rng.choice(bound)
        old = self.devices[old_id]
        company = self.ownership.company_of[old_id]
        own = [d for d in self.company_devices(company) if d != old_id]
        to_stock = rng.random() < 0.15 or not own  # a company of one device moves its licence only that way
        self.stats["moves"] += 1
        roll = rng.random()
        if roll < 0.7 and old.powered:
            self.stats["partitioned_moves"] += 1
            self.partition(old, rng.uniform(1.1, 2.5) * LEASE_S)
            if rng.random() < 0.7:
                old.skew_s = rng.choice([-MARGIN_S, -MARGIN_S, -0.7 * MARGIN_S, rng.uniform(-MARGIN_S, MARGIN_S)])
            if rng.random() < 0.6:  # power-cycled while cut off: the lease survives, its monotonic start not
                old.power_off()
                old.keep_skew = True
                old.on_at = self.now_s + rng.uniform(5, LEASE_S * 0.8)
        elif roll < 0.8:
            self.power_cycle(old, rng.uniform(10, 2 * LEASE_S))
        if to_stock:
            self.company_release(licence_id)
        else:
            self.bind_request(self.devices[rng.choice(own)], key)

    def step(self) -> None:
        rng = self.rng
        self.step_no += 1
        roll = rng.random()
        dt = (
            rng.uniform(0.5, 12)
            if roll < 0.55
            else rng.choice([15, 20, 30, 45, 60, 90])
            if roll < 0.88
            else rng.choice([150, 300, LEASE_S // 2, LEASE_S, LEASE_S + MARGIN_S])
        )
        self.run_until(self.now_s + dt)
        device = self.devices[rng.choice(sorted(self.devices))]
        roll = rng.random()
        if roll < 0.09:
            self.move()
        elif roll < 0.15:  # any key on any device: often another company's, or from the stock
            self.bind_request(device, rng.choice(self.keys)[1])
        elif roll < 0.19:
            self.partition(device, rng.choice([rng.uniform(5, 120), rng.uniform(LEASE_S, 2.5 * LEASE_S)]))
        elif roll < 0.23:
            self.power_cycle(device, rng.choice([rng.uniform(1, 60), rng.uniform(60, 1.5 * LEASE_S)]))
        elif roll < 0.30:
            device.skew_s = self.pick_skew()  # NTP steps and slews, within the margin
        elif roll < 0.34 and self.docs[device.device_id]:  # a late copy of an older document version
            self.send_down(Packet(0, 0, device.device_id, doc=rng.choice(self.docs[device.device_id])))
        elif roll < 0.36:
            self.sweeper_down_until = self.now_s + rng.uniform(30, 900)  # the worker restarts
        elif roll < 0.39 and device.connected(self.now_s):
            self.send_up(device, device.report())
        elif roll < 0.43:
            self.upload_release_file(device)
        elif roll < 0.445:  # whatever state it is in
            self.company_release(rng.choice(self.keys)[0])
        self.check()

    # --------------------------------------------------------------- invariants
    def check(self) -> None:
        for licence_id, _key in self.keys:
            sellers = [d for d in self.devices.values() if d.can_sell(licence_id, self.now_s)]
            for seller in sellers:
                self.stats["sold"].add((licence_id, seller.device_id))
                self.ownership.check_seller(licence_id, seller.device_id, self.where)
            if len(sellers) > 1:
                states = "; ".join(d.describe(licence_id, self.now_s) for d in self.devices.values())
                raise Violation(
                    f"{self.where}: licence {licence_id} usable on {[d.device_id for d in sellers]} ({states})"
                )

    def heal(self) -> None:
        for device in self.devices.values():
            device.cut_until = min(device.cut_until, self.now_s)
            device.on_at = min(device.on_at, self.now_s)
        self.sweeper_down_until = 0.0
        self.run_until(self.now_s + 1)

    def settle(self) -> None:
        """Heal everything, let every deadline pass; then no licence may be stuck."""
        self.heal()
        self.run_until(self.now_s + LEASE_S + MARGIN_S + 2 * SWEEP_S + 90)
        self.calm = True
        self.run_until(self.now_s + 2 * RENEW_S)
        with Session(self.db.engine) as session:
            for licence_id, _key in self.keys:
                licence = session.get(Licence, licence_id)
                where = f"{self.where}: licence {licence_id}"
                if licence.state not in (LicenceState.BOUND, LicenceState.ASSIGNED):
                    raise Violation(f"{where} stuck in {licence.state}")
                if licence.state == LicenceState.BOUND and not self.devices[licence.device_id].can_sell(
                    licence_id, self.now_s
                ):
                    raise Violation(
                        f"{where} bound to {licence.device_id}, which cannot sell: "
                        f"{self.devices[licence.device_id].verdict(licence_id, self.now_s).code}"
                    )

    def calm_bind(self, licence_id: str, key: str, target: str, what: str) -> None:
        """The key typed on `target` in calm weather: bound there, selling, within seconds."""
        self.bind_request(self.devices[target], key)
        self.run_until(self.now_s + CALM_MOVE_S)
        licence = self.db.licence(licence_id)
        if licence.device_id != target or not self.devices[target].can_sell(licence_id, self.now_s):
            raise Violation(
                f"{self.where}: licence {licence_id} not {what} {target} within {CALM_MOVE_S:.0f} s "
                f"in calm weather ({licence.state}, {licence.device_id})"
            )

    def calm_moves(self) -> None:
        """In calm weather, with every device online: a bind or a move completes within seconds;
        another company's terminal takes nothing; the company's release returns the licence
        to the partner's stock within seconds, and another company's terminal then binds it."""
        self.calm = True
        for licence_id, key in self.keys:
            holder = self.ownership.holder[licence_id]
            if self.db.licence(licence_id).state != LicenceState.BOUND:  # free: the company's, or anybody's stock
                first = self.company_devices(holder)[0] if holder is not None else self.rng.choice(sorted(self.devices))
                self.calm_bind(licence_id, key, first, "bound to")
            company = self.ownership.holder[licence_id]
            for _twice in range(2):
                holder_device = self.db.licence(licence_id).device_id
                own = [d for d in self.company_devices(company) if d != holder_device]
                if own:
                    self.calm_bind(licence_id, key, own[0], f"moved from {holder_device} to")
            before = self.db.licence(licence_id)
            outsider = self.rng.choice(self.company_devices(company, other=True))
            self.bind_request(self.devices[outsider], key)
            self.run_until(self.now_s + CALM_MOVE_S)
            after = self.db.licence(licence_id)
            if (after.state, after.device_id, after.epoch) != (
                before.state,
                before.device_id,
                before.epoch,
            ) or not self.devices[before.device_id].can_sell(licence_id, self.now_s):
                raise Violation(
                    f"{self.where}: licence {licence_id} of {before.device_id} disturbed by a key "
                    f"typed on {outsider} of another company ({after.state}, {after.device_id})"
                )
            self.company_release(licence_id)
            self.run_until(self.now_s + CALM_MOVE_S)
            returned = self.db.licence(licence_id)
            if (returned.state, returned.company_id) != (LicenceState.ASSIGNED, None):
                raise Violation(
                    f"{self.where}: licence {licence_id} released by its company is not back in the "
                    f"partner's stock within {CALM_MOVE_S:.0f} s in calm weather ({returned.state}, "
                    f"{returned.device_id})"
                )
            self.calm_bind(licence_id, key, outsider, "bound from the stock to")
        self.calm = False

    def upload_release_file(self, device: SimDevice) -> None:
        """A technician uploads a release file of `device`, maybe an old one (cloud_api/api/licences.py)."""
        if not device.tombstones:
            return
        (licence_id, epoch), (receipt, _at, _confirmed) = self.rng.choice(list(device.tombstones.items()))
        with Session(self.db.engine) as session, session.begin(), contextlib.suppress(LicenceRefused):
            binding.accept_release(
                session, device.device_id, licence_id, epoch, receipt, self.now, self.policy, actor="user:1"
            )
        self.publish()


def run_model(seed: int, directory: Path, steps: int = STEPS) -> World:
    """One seeded run; raises Violation (an AssertionError) at the first broken invariant."""
    rng = random.Random(seed)
    with licence_database("sqlite", directory) as db:
        use_policy(db.policy)
        try:
            keys = db.issue(1, assign_to=db.company_id) + db.issue(1, unseal=True)
            world = World(db, rng, keys, seed)
            for device in world.devices.values():
                device.skew_s = world.pick_skew()
            world.calm_moves()  # the first minutes: calm, every till online
            for _ in range(steps):
                world.step()
            world.settle()
            world.run_until(world.now_s + 3600)  # past the per-hour move limit
            world.calm_moves()
            return world
        finally:
            use_policy(None)


@pytest.mark.parametrize("seed", SEEDS)
def test_never_two_usable_leases_and_never_stuck(seed: int, tmp_path: Path) -> None:
    print(f"licence model seed {seed} (rerun: KASSA_LICENCE_SEED={seed})")
    world = run_model(seed, tmp_path)
    stats = world.stats
    # The run exercised real leases and real moves, partitions among them, not an idle network.
    assert len(stats["sold"]) >= 3 and stats["partitioned_moves"] >= 3 and world.commands, stats
    # ... and the companies: keys refused on other companies' terminals, licences released to
    # the stock and bound from it by another company.
    assert stats["refused"].get("licence.other_company", 0) >= 3 and stats["returned"] >= 3, stats
    assert stats["stock_bound"] >= 3, stats
    print(
        f"seed {seed}: {stats['moves']} moves ({stats['partitioned_moves']} with the old device cut off), "
        f"{len(world.commands)} release orders, {len(stats['sold'])} (licence, device) pairs sold, "
        f"{stats['releases']} company releases, {stats['returned']} back in the stock, "
        f"{stats['stock_bound']} bound from the stock, refused {stats['refused']}, cloud time +{world.now_s:.0f} s"
    )


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_the_model_catches_planted_bugs(mutation: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every planted bug breaks an invariant in every default seed (deterministic)."""
    MUTATIONS[mutation](monkeypatch)
    missed = []
    for seed in DEFAULT_SEEDS:
        try:
            (tmp_path / str(seed)).mkdir()
            run_model(seed, tmp_path / str(seed))
        except Violation as found:
            print(f"{mutation}: {found}")
            continue
        missed.append(seed)
    assert not missed, f"mutation {mutation} not caught by seeds {missed}"
