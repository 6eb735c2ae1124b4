"""``kassa-agent``: run the on-device daemon."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from agent.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from agent.store import StoreError, StoreFullError, StoreReadOnlyError
from agent.version import agent_version
from broker.logs import setup_logging

log = logging.getLogger("agent")

# Exit codes follow sysexits.h so systemd and scripts can tell failures apart.
EXIT_OK = 0
EXIT_SOFTWARE = 70
EXIT_CANTCREAT = 73  # state directory or database not writable
EXIT_IOERR = 74  # disk full, damaged database
EXIT_CONFIG = 78


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kassa-agent", description="kassa on-device agent for POS terminals.")
    parser.add_argument(
        "-c", "--config", type=Path, default=DEFAULT_CONFIG_PATH, help=f"config file (default {DEFAULT_CONFIG_PATH})"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    parser.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    parser.add_argument("--version", action="version", version=f"kassa-agent {agent_version()}")
    return parser


def keep_escpos_cache(state_dir: Path) -> None:
    """Point python-escpos's capabilities cache at our state dir, before escpos is imported.

    Left alone, escpos pickles its printer database into a fresh temp dir of each process, so
    every start parsed the YAML again (0.1-0.3 s of CPU here, more on a terminal's CPU). Kept
    with the state, it is parsed once; escpos parses it again itself when its database is newer.
    """
    cache = state_dir / "cache" / "escpos"
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # the daemon reports an unusable state dir itself; escpos falls back to a temp dir
    os.environ.setdefault("ESCPOS_CAPABILITIES_PICKLE_DIR", str(cache))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging("debug" if args.verbose else "info")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"kassa-agent: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check_config:
        print(f"{args.config}: configuration is valid (device {config.device_id}).")
        return EXIT_OK
    setup_logging("debug" if args.verbose else config.log.level, config.log.format)
    keep_escpos_cache(config.paths.state_dir)
    # Imported only now: the daemon's import brings in python-escpos, which reads the cache
    # directory from the environment at import time.
    from agent.daemon import Agent

    agent = Agent(config, args.config, verbose=args.verbose)
    try:
        return asyncio.run(agent.run())
    except ConfigError as exc:
        log.error("cannot start: configuration problem", extra={"problem": str(exc)})
        return EXIT_CONFIG
    except StoreReadOnlyError as exc:
        log.error("cannot start: store not writable", extra={"problem": str(exc)})
        return EXIT_CANTCREAT
    except (StoreFullError, StoreError) as exc:
        log.error("cannot start: store problem", extra={"problem": str(exc)})
        return EXIT_IOERR
    except Exception:
        log.exception("agent crashed; systemd will restart it. Please report this with `kassactl diagnostics`.")
        return EXIT_SOFTWARE


if __name__ == "__main__":
    sys.exit(main())
