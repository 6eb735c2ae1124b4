"""Human-readable output of kassactl (``--json`` prints the raw results instead)."""

from __future__ import annotations

from typing import Any


def status(result: dict[str, Any]) -> str:
    store = result.get("store") or {}
    lines = [
        f"device      {result['device_id']}  (kassa {result['version']}, {result['state']})",
        f"boot        #{result['boot_count']} id {result['boot_id']}, up {result['uptime_s']:.0f} s",
        (
            f"store       {store.get('path', '-')}  schema v{store.get('schema_version', '?')}, integrity "
            f"{store.get('integrity', '?')}, {store.get('size_bytes', 0) // 1024} KiB"
        ),
    ]
    if store.get("disk_full"):
        lines.append(f"DISK FULL   {store.get('problem')}")
    if result.get("restart_needed"):
        lines.append(f"restart     needed for: {', '.join(result['restart_needed'])}")
    components = result.get("components", {})
    for name, component in sorted(components.items()):
        summary = component.get("summary") or ", ".join(
            f"{k}={v}" for k, v in component.items() if not isinstance(v, (dict, list))
        )
        lines.append(f"{name:<11} {summary}")
    cloud = components.get("cloud")
    if cloud is not None:
        versions = cloud.get("state_versions") or {}
        pushed = ", ".join(f"{domain} v{version}" for domain, version in sorted(versions.items())) or "none yet"
        lines.append(f"pushed      {pushed}")
        if cloud.get("outbox_rejected"):
            lines.append(f"rejected    {cloud['outbox_rejected']} message(s) refused by the cloud (see diagnostics)")
    jobs = ", ".join(job["name"] for job in result.get("scheduler", []))
    lines.append(f"jobs        {jobs or '-'}")
    return "\n".join(lines)


def drain_progress(depth: int, rate: float | None, left_s: float | None, cloud: dict[str, Any]) -> str:
    speed = "-" if rate is None else f"{rate:,.0f}/s"
    left = "" if left_s is None else f", about {left_s:,.0f} s left"
    link = "connected" if cloud.get("connected") else f"disconnected ({cloud.get('last_error') or 'connecting'})"
    return f"outbox {depth:,}  {speed}{left}  cloud {link}"


def drain_summary(first_depth: int, elapsed_s: float) -> str:
    if first_depth == 0:
        return "outbox empty: nothing waits for the cloud"
    return f"outbox drained: {first_depth:,} message(s) in {elapsed_s:,.1f} s"


def devices(result: dict[str, Any]) -> str:
    lines = []
    for name, printer in result.get("printers", {}).items():
        default = " (receipts)" if name == result.get("receipt_printer") else ""
        queued = f", {printer['queued']} queued" if printer.get("queued") else ""
        error = f", last error: {printer['last_error']}" if printer.get("last_error") else ""
        lines.append(f"printer  {name:<12} {printer['status']}{queued}{error}{default}")
    for name, scanner in result.get("scanners", {}).items():
        lines.append(f"scanner  {name:<12} {scanner['status']}")
    for name in result.get("drawers", []):
        default = " (cash)" if name == result.get("cash_drawer") else ""
        lines.append(f"drawer   {name:<12}{default}")
    for device in result.get("discovered", []):
        lines.append(
            f"found    {device['identity']:<28} {device['kind']:<8} driver {device.get('driver') or '-'}  "
            f"{device.get('description', '')}"
        )
    return "\n".join(lines) or "no devices configured or found"


def print_jobs(result: list[dict[str, Any]]) -> str:
    if not result:
        return "no print jobs"
    rows = []
    for job in result:
        copy = (
            f" {'automatic ' if job.get('automatic') else ''}copy of {job['copy_of'][:12]}"
            if job.get("copy_of")
            else ""
        )
        error = f"  ({job['last_error']})" if job.get("last_error") and job["state"] != "printed" else ""
        rows.append(
            f"{job['job_id'][:12]}  {job['printer']:<10} {job['kind']:<8} {job['state']:<15} tries "
            f"{job['attempts']}{copy}{error}"
        )
    if any(job["state"] == "needs_attention" for job in result):
        rows.append(
            "needs_attention: not known whether it came out; the agent prints a copy once, never a copy of a copy.\n"
            "  Reprint it (kassactl print reprint JOB_ID, or the POS reprint) or, if it came out, kassactl print "
            "dismiss JOB_ID."
        )
    return "\n".join(rows)


def scan(item: dict[str, Any]) -> str:
    if item.get("kind") == "scan.rejected":
        return f"{item.get('scanner', '?'):<10} REJECTED {item.get('reason', '?')}: {item.get('message', '')}"
    verdict = "" if item.get("valid") is not False else "  (check digit WRONG)"
    return f"{item.get('scanner', '?'):<10} {item.get('symbology', '?'):<8} {item.get('data', '')}{verdict}"


def methods(result: list[dict[str, Any]]) -> str:
    return "\n".join(f"{m['name']:<16} {m['role']:<6} {m['summary']}" for m in result)


def pairing(result: dict[str, Any]) -> str:
    state = result["state"]
    if state == "waiting":
        lines = [
            f"waiting for a company admin to claim this terminal with the code  {result['pairing_code']}",
            f"the code is valid until {result.get('expires_at') or '?'}",
        ]
    elif state == "unpaired":
        lines = [f"unpaired: registering with {result.get('api_url')}"]
        if result.get("pairing_code"):
            lines.append(f"code (valid once registered)  {result['pairing_code']}")
    elif state == "paired":
        cert = result.get("certificate") or {}
        lines = [
            f"paired: certificate for {cert.get('device', '?')} valid until {cert.get('not_after', '?')} "
            f"({cert.get('file', '-')})"
        ]
    else:
        lines = [
            "pairing is off: set [cloud] api_url to pair through the cloud (the broker certificate is configured by "
            "hand)"
        ]
    if result.get("last_error") and state != "paired":
        lines.append(f"last error: {result['last_error']}")
    return "\n".join(lines)


def licence(result: dict[str, Any]) -> str:
    if result["ok"]:
        lines = [
            f"licensed    {result['licence_id']} (epoch {result['epoch']}), lease valid until {result['expires_at']}"
        ]
    else:
        lines = [f"no sales    {result['code']}: {result['message']}"]
    if result.get("released"):
        lines.append(f"released    {', '.join(result['released'])}")
    bind = result.get("bind_request")
    if bind is not None:
        detail = f" ({bind['detail']})" if bind.get("detail") else ""
        lines.append(f"key         {bind['key_hint']} entered {bind['requested_at']}: {bind['outcome']}{detail}")
        if bind.get("message"):
            lines.append(f"            {bind['message']}")
    return "\n".join(lines)


def licence_check(result: dict[str, Any]) -> str:
    return (
        f"ok: sales allowed on {result['licence_id']}"
        if result["ok"]
        else f"refused ({result['code']}): {result['message']}"
    )


def licence_entered(result: dict[str, Any]) -> str:
    where = (
        "sent to the cloud"
        if result.get("cloud_connected")
        else "queued; it goes to the cloud once the terminal is online"
    )
    return f"licence key {result['key_hint']} {where}; `kassactl licence` shows the outcome"


def licence_release_file(result: dict[str, Any]) -> str:
    printed = f"\nprinted as job {result['job_id']}" if result.get("job_id") else ""
    return (
        f"{result['qr']}\n\nlicence {result['licence_id']} (epoch {result['epoch']}) released on this terminal for "
        f"good.\n"
        f"release file: {result['path']}\nupload it (or scan the QR code) in the kassa cloud to move the "
        f"licence.{printed}"
    )
