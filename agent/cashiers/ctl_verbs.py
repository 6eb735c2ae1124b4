"""kassactl verbs for cashiers: ``cashiers [list|load]`` and ``cashier login CODE``.

The PIN is never taken from the command line (argv is visible to every user in ``ps``):
it is asked for without echo on a terminal, or read as one line from standard input.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from agent.ctl_client import EXIT_OK, ControlClient, ControlError


def add_parsers(sub: Any) -> None:
    roster = sub.add_parser("cashiers", help="the cashier roster: list, or load the current one from the cloud")
    roster.add_argument("action", nargs="?", choices=["list", "load"], default="list")
    cashier = sub.add_parser("cashier", help="cashier sessions: log in (the PIN is asked for, never an argument)")
    cashier.add_argument("action", choices=["login"])
    cashier.add_argument("code", help="cashier code or 4-digit operator code")
    cashier.add_argument(
        "--point-of-sale", help="point of sale whose details the session uses (default: the terminal's)"
    )


def run(client: ControlClient, args: argparse.Namespace) -> int | None:
    """Handle the cashier verbs; None for any other command."""
    if args.command == "cashiers":
        result = client.call("cashiers.load" if args.action == "load" else "cashiers.list")
        print(
            json.dumps(result, indent=2)
            if args.json
            else (load_text(result) if args.action == "load" else roster_text(result))
        )
        return EXIT_OK
    if args.command == "cashier":
        params = {"code": args.code, "pin": read_pin()}
        if args.point_of_sale:
            params["point_of_sale"] = args.point_of_sale
        result = client.call("cashier.login", **params)
        print(json.dumps(result, indent=2) if args.json else session_text(result))
        return EXIT_OK
    return None


def read_pin() -> str:
    pin = getpass.getpass("PIN: ") if sys.stdin.isatty() else sys.stdin.readline().strip()
    if not pin:
        raise ControlError("no PIN given: type it at the prompt, or pipe it on standard input (never as an argument)")
    return pin


def roster_text(result: dict[str, Any]) -> str:
    if not result["version"]:
        return "no cashier roster yet: connect the terminal to the cloud, then kassactl cashiers load"
    lines = [f"roster v{result['version']}, {len(result['cashiers'])} cashier(s)"]
    if result.get("refused"):
        lines.append(f"refused v{result['refused']['version']}: {result['refused']['problem']}")
    for c in result["cashiers"]:
        flags = [
            x
            for x, on in (
                ("disabled", not c["enabled"]),
                ("no PIN", not c["has_pin"]),
                (f"locked until {c.get('locked_until')}", bool(c.get("locked_until"))),
            )
            if on
        ]
        points = ", ".join(f"{d['point_of_sale']} ({details_text(d)})" for d in c["details"])
        lines.append(
            f"{c['cashier_id']:<12} {c['operator_code']}  {c['name']:<24} {','.join(c['roles']):<22} {' '.join(flags)}"
        )
        if points:
            lines.append(f"{'':<12} details: {points}")
    return "\n".join(lines)


def details_text(details: dict[str, Any]) -> str:
    """One details set: its session label if it has one, terminal id, operator code."""
    label = details.get("session_label")
    return ", ".join(
        [
            *([label] if label else []),
            f"terminal {details.get('terminal_id') or '-'}",
            f"operator {details['operator_code']}",
        ]
    )


def load_text(result: dict[str, Any]) -> str:
    if result["changed"]:
        return f"roster loaded: v{result['before']} -> v{result['after']} ({result['cashiers']} cashiers)"
    if not result["received"]:
        return f"no roster arrived from the cloud within the wait; v{result['before']} stays in use"
    return f"roster is current (v{result['after']}, {result['cashiers']} cashiers)"


def session_text(result: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"logged in: {result['name']} ({result['cashier_id']}), roles {', '.join(result['roles'])}",
            f"point of sale {result['point_of_sale'] or '-'}: {details_text(result)}",
            f"till session {result['till_session_id']}, expires {result['expires_at']} if unused",
            f"token {result['token']}",
        ]
    )
