"""``kassa-cloud keys`` and ``kassa-cloud provisioning-qr``: no database needed."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from broker import contract as kc
from cloud_api import signing_keys
from cloud_api.provisioning import QrTooLarge, qr_text, write_qr_png
from cloud_api.settings import CloudSettings


def run_keys_command(command: str, settings: CloudSettings, args: dict[str, Any]) -> int:
    path = Path(settings.signing_key_file)
    try:
        if command == "keys" and args["action"] == "generate":
            key = signing_keys.generate(path, settings.signing_key_id)
            print(f"wrote {path} (mode 0600). Pin it on terminals in /etc/kassa/agent.toml:")
        else:
            key = signing_keys.load(path, settings.signing_key_id)
        if command == "keys":
            if args["action"] == "show":
                print(f"key {key.key_id} from {path}. Terminals pin it as:")
            print(f'[trust]\ncloud_keys = {{ "{key.key_id}" = "{key.public_text}" }}')
            return 0
        return _provisioning_qr(key, args)
    except signing_keys.SigningKeyError as exc:
        print(f"kassa-cloud: {exc}", file=sys.stderr)
        return 1


def _provisioning_qr(key: signing_keys.SigningKey, args: dict[str, Any]) -> int:
    host, port = None, None
    if args.get("broker"):
        host, _, port_text = args["broker"].rpartition(":")
        if not host or not port_text.isdigit():
            print("kassa-cloud: --broker must be HOST:PORT, e.g. mqtt.example.com:8883", file=sys.stderr)
            return 2
        port = int(port_text)
    now = datetime.now(UTC)
    try:
        settings = kc.Provisioning(
            point_of_sale=args.get("point_of_sale"),
            language=args.get("language"),
            scanner=args.get("scanner"),
            rooms=args.get("rooms"),
            broker_host=host,
            broker_port=port,
            issued_at=now,
            expires_at=now + timedelta(days=args["valid_days"]),
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"kassa-cloud: invalid setting: {problems}", file=sys.stderr)
        return 2
    text = qr_text(settings, key)
    try:
        out = write_qr_png(text, Path(args["out"]))
    except QrTooLarge as exc:
        print(f"kassa-cloud: {exc}", file=sys.stderr)
        return 2
    assert settings.expires_at is not None  # given above; the model also allows a code without an end
    print(f"wrote {out}; scan it with the terminal's scanner. Valid until {settings.expires_at.isoformat()}.")
    return 0
