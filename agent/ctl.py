"""``kassactl``: the field technician's command line, speaking to the agent's control socket."""

from __future__ import annotations

import argparse
import base64
import difflib
import io
import json
import os
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent import ctl_format
from agent.cashiers import ctl_verbs as cashier_verbs
from agent.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from agent.ctl_client import EXIT_ERROR, EXIT_NOT_OK, EXIT_OK, ControlClient, ControlError, confirm
from agent.posapi import ctl_verbs as pos_verbs
from agent.version import agent_version

DEFAULT_SOCKET = Path("/run/kassa/control.sock")


def _socket_path(args: argparse.Namespace) -> Path:
    if args.socket:
        return Path(args.socket)
    if args.config:
        return load_config(args.config).paths.control_socket
    if DEFAULT_CONFIG_PATH.exists():
        try:
            return load_config(DEFAULT_CONFIG_PATH).paths.control_socket
        except ConfigError:
            pass
    return DEFAULT_SOCKET


class _Parser(argparse.ArgumentParser):
    """argparse with "did you mean" for a mistyped command or action, instead of every choice."""

    # argparse checks every choice here, the command's and each action's (Python 3.14 added
    # suggest_on_error for this; 3.11 has none)
    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if action.choices is not None and value not in action.choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in action.choices], n=3, cutoff=0.6)
            if close:
                raise argparse.ArgumentError(
                    action, f"invalid choice: {value!r}; did you mean {' or '.join(map(repr, close))}?"
                )
        super()._check_value(action, value)


def _add_global_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    """The flags every command takes. On a command's own parser their default is SUPPRESS, so
    ``kassactl status --json`` sets --json and a flag given before the command is not reset."""
    parser.add_argument(
        "--socket",
        type=Path,
        default=default,
        help=f"control socket (default: from the config, else {DEFAULT_SOCKET})",
    )
    parser.add_argument("-c", "--config", type=Path, default=default, help="agent config file to find the socket in")
    parser.add_argument(
        "--json",
        action="store_true",
        default=default if default is argparse.SUPPRESS else False,
        help="machine-readable output",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="kassactl",
        description="Talk to the local kassa agent.",
        epilog="Exit codes: 0 ok, 1 error, 2 usage, 3 answered but not OK, 69 agent not running, 77 permission "
        "denied (docs/kassactl.md).",
    )
    parser.add_argument("--version", action="version", version=f"kassactl {agent_version()}")
    _add_global_flags(parser, None)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    status = sub.add_parser("status", help="agent, cloud link, outbox, devices, pushed versions")
    status.add_argument(
        "--watch", action="store_true", help="follow the outbox draining to the cloud until it is empty (or Ctrl-C)"
    )
    status.add_argument("--interval", type=float, default=1.0, help="--watch: seconds between samples")
    sub.add_parser("ping", help="check the agent answers")
    sub.add_parser("methods", help="list control methods and the role each needs")
    sub.add_parser("reload", help="re-read the config file (like SIGHUP)")
    sub.add_parser("devices", help="printers, scanners, drawers and discovered hardware")
    test_print = sub.add_parser("test-print", help="print a test page")
    test_print.add_argument("--printer", help="printer name (default: the receipt printer)")
    drawer = sub.add_parser("drawer", help="cash drawer actions")
    drawer.add_argument("action", choices=["open"])
    drawer.add_argument("name", nargs="?", help="drawer name (default: the cash drawer)")
    jobs = sub.add_parser(
        "print", help="print jobs: list, show what one prints, reprint, or dismiss one that waits for a person"
    )
    jobs.add_argument("action", choices=["jobs", "show", "reprint", "dismiss"])
    jobs.add_argument("job_id", nargs="?", help="job to show, reprint or dismiss (any unique start of its id)")
    jobs.add_argument("--png", type=Path, help="show: also write the receipt as a PNG image to this file")
    scan = sub.add_parser("scan", help="show scans")
    scan.add_argument("--watch", action="store_true", required=True, help="stream scans until Ctrl-C")
    config = sub.add_parser("config", help="read or change the configuration")
    config.add_argument("action", choices=["get", "set"])
    config.add_argument("key", nargs="?", help="dotted key, e.g. mqtt.port")
    config.add_argument("value", nargs="?", help="new value (TOML literal or plain text)")
    logs = sub.add_parser("logs", help="recent log lines")
    logs.add_argument("-n", "--lines", type=int, default=100)
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    pairing = sub.add_parser("pairing", help="pairing with the cloud: stage and the code a company admin claims")
    pairing.add_argument(
        "--print", dest="print_code", action="store_true", help="print the code on the receipt printer"
    )
    pairing.add_argument("--printer", help="printer name for --print (default: the receipt printer)")
    licence = sub.add_parser(
        "licence", help="licence: status, enter a key, check the sale verdict, offline release file"
    )
    licence.add_argument("action", nargs="?", default="status", choices=["status", "enter", "check", "release-file"])
    licence.add_argument("key", nargs="?", help="the licence key for `enter`, e.g. 7KQ2-M9XD-T4HB-8WZC")
    licence.add_argument("--licence-id", help="release-file: which licence, if the terminal holds several")
    licence.add_argument("--printer", help="release-file: also print the QR code on this printer")
    licence.add_argument("-y", "--yes", action="store_true", help="release-file: do not ask for confirmation")
    cashier_verbs.add_parsers(sub)
    pos_verbs.add_parsers(sub)
    diagnostics = sub.add_parser("diagnostics", help="write a support bundle (tar.gz)")
    diagnostics.add_argument(
        "-o", "--output", type=Path, help="file to write (default: kassa-diagnostics-<device>-<time>.tar.gz)"
    )
    for command_parser in set(sub.choices.values()):
        _add_global_flags(command_parser, argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        client = ControlClient(_socket_path(args))
        return run(client, args)
    except ConfigError as exc:
        print(f"kassactl: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ControlError as exc:
        print(f"kassactl: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_OK


def run(client: ControlClient, args: argparse.Namespace) -> int:
    command = args.command
    if command == "scan":
        return _stream(client, "scan.watch", args, ctl_format.scan)
    if command == "logs" and args.follow:
        for line in client.call("logs", lines=args.lines):
            print(line, flush=True)
        return _stream(client, "logs.follow", args, lambda item: item["line"])
    if command == "diagnostics":
        return _diagnostics(client, args)
    if command == "print" and args.action == "show":
        return _print_show(client, args)
    if command == "status" and args.watch:
        return watch_outbox(client, args.interval, args.json)
    if command == "config":
        return _config(client, args)
    if command in ("cashiers", "cashier"):
        return cashier_verbs.run(client, args) or EXIT_OK
    if command == "pos":
        return pos_verbs.run(client, args) or EXIT_OK
    if command == "licence" and args.action == "release-file" and not args.yes:
        confirm(
            "kassactl licence release-file gives this terminal's licence up for good: it stops selling until a "
            "licence is entered again"
        )
    method, params, formatter = _simple(args)
    result = client.call(method, **params)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(formatter(result))
    if command == "reload" and result.get("error"):
        print(f"kassactl: {result['error']}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_NOT_OK if _not_ok(command, args, result) else EXIT_OK


def _not_ok(command: str, args: argparse.Namespace, result: Any) -> bool:
    """The agent answered, and what a script asks about is not OK (exit code 3; docs/kassactl.md)."""
    if command == "status":  # a store that fails its integrity check stops the agent at start
        return result.get("state") != "running" or bool((result.get("store") or {}).get("disk_full"))
    if command == "devices":
        return any(printer.get("status") != "ready" for printer in result.get("printers", {}).values())
    if command == "licence" and args.action == "check":
        return not result.get("ok")
    return False


def _simple(args: argparse.Namespace) -> tuple[str, dict[str, Any], Any]:
    command = args.command
    if command == "status":
        return "status", {}, ctl_format.status
    if command == "ping":
        return "ping", {}, lambda r: f"pong from {r['device_id']} (boot {r['boot_id']})"
    if command == "methods":
        return "methods", {}, ctl_format.methods
    if command == "reload":
        return (
            "config.reload",
            {},
            lambda r: (
                f"applied: {', '.join(r['applied']) or '-'}; restart needed: {', '.join(r['restart_needed']) or '-'}"
            ),
        )
    if command == "devices":
        return "devices", {}, ctl_format.devices
    if command == "test-print":
        return (
            "print.test",
            {"printer": args.printer} if args.printer else {},
            lambda r: f"test page queued as job {r['job_id']}",
        )
    if command == "drawer":
        return (
            "drawer.open",
            {"drawer": args.name} if args.name else {},
            lambda r: f"drawer opened; sensor: {r['state']}",
        )
    if command == "print" and args.action == "reprint":
        if not args.job_id:
            raise ControlError("kassactl print reprint JOB_ID: which job? (kassactl print jobs lists them)")
        return "print.reprint", {"job_id": args.job_id}, lambda r: f"copy queued as job {r['job_id']}"
    if command == "print" and args.action == "dismiss":
        if not args.job_id:
            raise ControlError("kassactl print dismiss JOB_ID: which job? (kassactl print jobs lists them)")
        return (
            "print.dismiss",
            {"job_id": args.job_id},
            lambda r: f"job {r['job_id']} dismissed: it will not print again",
        )
    if command == "print":
        return "print.jobs", {}, ctl_format.print_jobs
    if command == "logs":
        return "logs", {"lines": args.lines}, lambda lines: "\n".join(lines)
    if command == "pairing" and args.print_code:
        return (
            "pairing.print",
            {"printer": args.printer} if args.printer else {},
            lambda r: f"pairing code queued for printing as job {r['job_id']}",
        )
    if command == "pairing":
        return "pairing", {}, ctl_format.pairing
    if command == "licence":
        return _licence(args)
    raise ControlError(f"unknown command {command}")


def _licence(args: argparse.Namespace) -> tuple[str, dict[str, Any], Any]:
    if args.action == "enter":
        if not args.key:
            raise ControlError("kassactl licence enter KEY: which key? e.g. kassactl licence enter 7KQ2-M9XD-T4HB-8WZC")
        return "licence.enter", {"key": args.key}, ctl_format.licence_entered
    if args.action == "check":
        return "licence.check", {}, ctl_format.licence_check
    if args.action == "release-file":
        params = {k: v for k, v in (("licence_id", args.licence_id), ("printer", args.printer)) if v is not None}
        return "licence.release_file", params, ctl_format.licence_release_file
    return "licence.status", {}, ctl_format.licence


def _stream(client: ControlClient, method: str, args: argparse.Namespace, formatter: Any) -> int:
    for item in client.stream(method):
        print(json.dumps(item) if args.json else formatter(item), flush=True)
    return EXIT_OK


def _config(client: ControlClient, args: argparse.Namespace) -> int:
    if args.action == "get":
        result = client.call("config.get", **({"key": args.key} if args.key else {}))
        value = result if not args.key else result["value"]
        print(
            json.dumps(result if args.json else value, indent=2, default=str)
            if isinstance(value, (dict, list)) or args.json
            else value
        )
        return EXIT_OK
    if args.key is None or args.value is None:
        raise ControlError("kassactl config set KEY VALUE: both are needed, e.g. kassactl config set log.level debug")
    result = client.call("config.set", key=args.key, value=args.value)
    if args.json:
        print(json.dumps(result, indent=2))
    elif result["applied"]:
        print(f"{args.key} saved and applied")
    elif result["restart_needed"]:
        print(f"{args.key} saved; restart needed (systemctl restart kassa-agent)")
    else:
        print(f"{args.key} saved (unchanged)")
    return EXIT_OK


def watch_outbox(
    client: ControlClient,
    interval_s: float,
    as_json: bool,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """One line per sample while the outbox drains (depth, rate, time left, why the link is down),
    then a summary. The rate is the net drain since the last sample: sales made meanwhile slow it."""
    started = clock()
    first_depth: int | None = None
    previous: tuple[int, float] | None = None  # depth and when, one sample back
    while True:
        cloud = client.call("status")["components"].get("cloud")
        if cloud is None:
            raise ControlError("the agent has no cloud link configured: nothing to watch")
        depth, now = int(cloud["outbox_depth"]), clock()
        if first_depth is None:
            first_depth = depth
        rate: float | None = None
        if previous is not None and now > previous[1]:
            rate = max(0.0, (previous[0] - depth) / (now - previous[1]))
        left: float | None = depth / rate if rate and depth else None
        if as_json:
            sample = {"outbox_depth": depth, "rate_per_s": rate, "left_s": left, "connected": cloud["connected"]}
            print(json.dumps(sample), flush=True)
        else:
            print(ctl_format.drain_progress(depth, rate, left, cloud), flush=True)
        if depth == 0:
            if not as_json:
                print(ctl_format.drain_summary(first_depth, now - started))
            return EXIT_OK
        previous = (depth, now)
        sleep(interval_s)


def _print_show(client: ControlClient, args: argparse.Namespace) -> int:
    if not args.job_id:
        raise ControlError("kassactl print show JOB_ID: which job? (kassactl print jobs lists them)")
    shown = client.call("print.show", job_id=args.job_id, png=args.png is not None)
    png = shown.pop("png_base64", None)
    if png is not None:
        args.png.write_bytes(base64.b64decode(png))
    if args.json:
        print(json.dumps(shown, indent=2, default=str))
        return EXIT_OK
    job = shown["job"]
    print(f"job {job['job_id']}  {job['printer']} {job['kind']} {job['state']}")
    print(shown["text"])
    if png is not None:
        print(f"wrote {args.png}")
    return EXIT_OK


def _diagnostics(client: ControlClient, args: argparse.Namespace) -> int:
    bundle = client.call("diagnostics")
    device = bundle["status"]["device_id"]
    output = args.output or Path(f"kassa-diagnostics-{device}-{time.strftime('%Y%m%d-%H%M%S')}.tar.gz")
    files = {
        "status.json": json.dumps(bundle["status"], indent=2, default=str),
        "config.json": json.dumps(bundle["config"], indent=2, default=str),
        "versions.json": json.dumps(bundle["versions"], indent=2),
        "devices.json": json.dumps(bundle.get("devices"), indent=2, default=str),
        "print_jobs.json": json.dumps(bundle.get("print_jobs"), indent=2, default=str),
        "store_integrity.txt": "\n".join(bundle["store_integrity"]) + "\n",
        "logs.txt": "\n".join(bundle["logs"]) + "\n",
    }
    # 0600 from the first byte: the bundle describes the site even without secrets
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"kassa-diagnostics/{name}")
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
            tar.addfile(info, io.BytesIO(data))
    summary = {"file": str(output), "files": sorted(files), "store_integrity": bundle["store_integrity"]}
    print(
        json.dumps(summary, indent=2)
        if args.json
        else f"wrote {output} ({len(files)} files; store integrity: {', '.join(bundle['store_integrity'])})"
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
