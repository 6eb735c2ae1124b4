"""The fleet run's result summed up: ratios to the baseline, targets, and a table for people (the JSON holds more)."""

from __future__ import annotations

from typing import Any


def _s(value: Any) -> str:
    return "-" if value is None else f"{value:.2f} s" if isinstance(value, float) else str(value)


def _dist(d: dict[str, Any] | None) -> str:
    if not d or not d.get("n"):
        return "-"
    return f"p50 {d['p50_s']:.2f} s, p90 {d['p90_s']:.2f} s, max {d['max_s']:.2f} s"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def format_report(result: dict[str, Any]) -> str:
    fleet = result["fleet"]
    base = result.get("baseline") or {}
    ratios = result.get("ratios") or {}
    o = result["options"]
    n = o["devices"]
    rows: list[tuple[str, str, str, str]] = []

    def row(name: str, ours: str, baseline: str = "-", times: str = "-") -> None:
        rows.append((name, ours, baseline, times))

    row(
        "connect all (from start)",
        _s(fleet["connect_all_s"]),
        _s(base.get("connect_all_s")),
        _x(ratios.get("connect_all")),
    )
    row("  connect distribution", _dist(fleet["connect"]), _dist(base.get("connect")))
    row("licence bind, all leased", _s(fleet["licence_all_s"]))
    sales = fleet["sales"]
    row(
        f"sales end to end ({sales['count']})",
        f"{sales['sales_per_s']:.0f} sales/s ({sales['seconds']:.2f} s)",
        f"{base['publish_msgs_per_s']:.0f} msg/s" if base else "-",
        _x(ratios.get("sales_per_s_vs_bare_publish")),
    )
    row("  exactly once in the cloud", "yes" if sales["exact"] else "NO")
    if sales.get("cpu_ms_per_sale"):
        cost = sales["cpu_ms_per_sale"]
        row(
            "  CPU ms per sale",
            f"terminals {cost['terminals']:.2f}, broker {cost['broker']:.2f}, cloud {cost['cloud']:.2f}",
        )
    row(
        "roster fan-out to all",
        _s(fleet["roster"]["fanout_s"]),
        _s(base.get("fanout_s")),
        _x(ratios.get("roster_fanout")),
    )
    row("  adopted by terminals", _dist(fleet["roster"]["arrival"]), _dist(base.get("fanout")))
    row("  read off the socket", _dist(fleet["roster"].get("delivered")))
    row("  PUBACK recorded by cloud", _dist(fleet["roster"].get("published")))
    row("  change committed (API)", _s(fleet["roster"]["commit_s"]))
    restart = fleet["restart"]
    base_restart = base.get("restart") or {}
    row(
        "broker restart: reconnect all",
        _s(restart["reconnect_all_s"]),
        _s(base_restart.get("reconnect_all_s")),
        _x(ratios.get("reconnect_all")),
    )
    row("  reconnect distribution", _dist(restart["reconnect"]), _dist(base_restart.get("reconnect")))
    row("  first attempt after the kill", _dist(restart.get("first_attempt")), _dist(base_restart.get("first_attempt")))
    row("  connection attempts", str(restart["connect_attempts"]), str(base_restart.get("connect_attempts", "-")))
    row("  all sales applied after kill", _s(restart["all_sales_applied_s"]))
    row("  exactly once after restart", "yes" if restart["exact"] else "NO")
    row("roster fan-out after restart", _s(fleet["roster_after_restart"]["fanout_s"]))
    row("  adopted by terminals", _dist(fleet["roster_after_restart"]["arrival"]))
    row("  read off the socket", _dist(fleet["roster_after_restart"].get("delivered")))
    mem, base_mem = fleet["memory"], base.get("memory") or {}
    row(
        "memory per device (workers)",
        f"{mem['per_device_kb']:.0f} KiB",
        f"{base_mem['per_device_kb']:.0f} KiB" if base_mem else "-",
        _x(ratios.get("memory_per_device")),
    )
    row(
        "broker memory per connection",
        f"{mem['broker_per_connection_kb']:.1f} KiB",
        f"{base_mem['broker_per_connection_kb']:.1f} KiB" if base_mem else "-",
        _x(ratios.get("broker_memory_per_connection")),
    )
    row(
        "  broker per device, end of run",
        f"{mem['broker_per_device_kb']:.1f} KiB",
        f"{base_mem['broker_per_device_kb']:.1f} KiB" if base_mem else "-",
    )
    for phase, used in (fleet.get("cpu_s") or {}).items():
        row(
            f"CPU s during {phase}",
            f"terminals {used['terminals']:.1f}, broker {used['broker']:.1f}, "
            f"cloud {used['cloud']:.1f} in {used['wall']:.1f} s",
        )
    header = ("", "kassa", "bare paho", "ratio")
    widths = [max(len(r[i]) for r in [*rows, header]) for i in range(4)]
    lines = [
        f"fleet of {n} terminals, {result['processes']} worker processes, "
        f"cloud database {result.get('database')}, {result['machine']}",
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.append(
        f"load average (1/5/15 min) at start {result.get('load_average_at_start')}, "
        f"at end {result.get('load_average_at_end')}"
    )
    lines.append(
        "targets: "
        + ", ".join(
            f"{k} {'met' if v is True else 'MISSED' if v is False else v}" for k, v in result["targets"].items()
        )
    )
    return "\n".join(lines)


def ratio(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return round(value / base, 2)


def ratios(result: dict[str, Any]) -> dict[str, Any]:
    base, fleet = result.get("baseline"), result["fleet"]
    if not base:
        return {}
    return {
        "connect_all": ratio(fleet["connect_all_s"], base["connect_all_s"]),
        "reconnect_all": ratio(fleet["restart"]["reconnect_all_s"], base["restart"]["reconnect_all_s"]),
        "reconnect_p50": ratio(fleet["restart"]["reconnect"]["p50_s"], base["restart"]["reconnect"]["p50_s"]),
        "sales_per_s_vs_bare_publish": ratio(fleet["sales"]["sales_per_s"], base["publish_msgs_per_s"]),
        "roster_fanout": ratio(fleet["roster"]["fanout_s"], base["fanout_s"]),
        "memory_per_device": ratio(fleet["memory"]["per_device_kb"], base["memory"]["per_device_kb"]),
        "broker_memory_per_connection": ratio(
            fleet["memory"]["broker_per_connection_kb"], base["memory"]["broker_per_connection_kb"]
        ),
    }


def targets(result: dict[str, Any], devices: int) -> dict[str, Any]:
    fleet = result["fleet"]
    return {
        "connected": f"{devices} terminals connected",
        "reconnect_within_60_s": fleet["restart"]["reconnect_all_s"] <= 60,
        "roster_within_10_s": fleet["roster"]["fanout_s"] <= 10,
        "roster_after_restart_within_10_s": fleet["roster_after_restart"]["fanout_s"] <= 10,
        "sales_exactly_once": fleet["sales"]["exact"] and fleet["restart"]["exact"],
    }
