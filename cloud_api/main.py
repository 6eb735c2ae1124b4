"""``kassa-cloud``: run the cloud service."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from broker.logs import setup_logging
from cloud_api.app import create_app
from cloud_api.db import make_engine
from cloud_api.settings import CloudSettings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kassa-cloud", description="kassa cloud service.")
    parser.add_argument("--database-url", help="SQLAlchemy URL (env KASSA_CLOUD_DATABASE_URL)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the admin HTTP API")
    serve.add_argument("--host", help="listen address (env KASSA_CLOUD_HTTP_HOST)")
    serve.add_argument("--port", type=int, help="listen port (env KASSA_CLOUD_HTTP_PORT)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {k: v for k, v in {"database_url": args.database_url, "http_host": getattr(args, "host", None), "http_port": getattr(args, "port", None)}.items() if v is not None}
    settings = CloudSettings(**overrides)
    setup_logging(settings.log_level)
    engine = make_engine(settings.database_url)
    if args.command == "serve":
        uvicorn.run(create_app(settings, engine), host=settings.http_host, port=settings.http_port, log_level=settings.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
