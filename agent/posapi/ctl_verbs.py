"""kassactl verbs for the POS API: ``pos token create --label L | list | revoke ID``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from agent.ctl_client import EXIT_OK, ControlClient, ControlError, confirm


def add_parsers(sub: Any) -> None:
    pos = sub.add_parser("pos", help="the local POS API: access tokens for a web POS")
    pos.add_argument("what", choices=["token"])
    pos.add_argument("action", choices=["create", "list", "revoke"])
    pos.add_argument("token_id", nargs="?", help="revoke: the token id (kassactl pos token list)")
    pos.add_argument("--label", help="create: a name for the POS, e.g. tablet-1")
    pos.add_argument("-y", "--yes", action="store_true", help="revoke: do not ask for confirmation")


def run(client: ControlClient, args: argparse.Namespace) -> int | None:
    """Handle ``pos``; None for any other command."""
    if args.command != "pos":
        return None
    if args.action == "create":
        if not args.label:
            raise ControlError("kassactl pos token create --label NAME: which POS is it for? e.g. --label tablet-1")
        result = client.call("pos.token.create", label=args.label)
        print(json.dumps(result, indent=2) if args.json else created_text(result))
    elif args.action == "revoke":
        if not args.token_id:
            raise ControlError("kassactl pos token revoke ID: which token? (kassactl pos token list shows them)")
        if not args.yes:
            confirm(f"kassactl pos token revoke {args.token_id}: the POS using that token loses access for good")
        result = client.call("pos.token.revoke", token_id=args.token_id)
        print(
            json.dumps(result, indent=2)
            if args.json
            else f"POS token {result['token_id']} revoked" + (" (it already was)" if result["already_revoked"] else "")
        )
    else:
        result = client.call("pos.token.list")
        print(json.dumps(result, indent=2) if args.json else list_text(result))
    return EXIT_OK


def created_text(result: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"POS token {result['token_id']} for {result['label']} created.",
            f"token: {result['token']}",
            "Enter it in the POS now: it is shown only this once (the terminal keeps only its hash).",
        ]
    )


def list_text(result: dict[str, Any]) -> str:
    tokens = result["tokens"]
    head = f"POS API at {result['url'] or '(not serving)'}; {sum(not t['revoked'] for t in tokens)} active token(s)"
    lines = [head]
    for t in tokens:
        state = f"revoked {t['revoked_at']}" if t["revoked"] else f"last used {t['last_used_at'] or 'never'}"
        lines.append(f"{t['token_id']:<12} {t['label']:<24} created {t['created_at']}  {state}")
    return "\n".join(lines)
