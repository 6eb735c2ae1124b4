"""Build the devices' listener plugin (broker/production/kassa_device_acl.c) for Mosquitto 2.0.

The plugin decides SUBSCRIBE for device certificates, which Mosquitto's acl_file cannot
(docs/deployment.md, "The production broker"). It is C because Mosquitto loads plugins as
shared libraries; it needs the Debian packages `mosquitto-dev` and `libssl-dev` and a C
compiler. `make setup` installs those; tests build it once per session; production:

    python -m broker.device_acl_plugin --out /usr/local/lib/kassa/kassa_device_acl.so
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "production" / "kassa_device_acl.c"
HEADERS = ("/usr/include/mosquitto_broker.h", "/usr/include/mosquitto_plugin.h", "/usr/include/openssl/x509.h")


class PluginBuildError(RuntimeError):
    pass


def build(out: Path, *, compiler: str | None = None) -> Path:
    """Compile the plugin to `out` unless it is already newer than the source; returns `out`."""
    if out.exists() and out.stat().st_mtime >= SOURCE.stat().st_mtime:
        return out
    cc = compiler or os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise PluginBuildError("no C compiler: install gcc (apt-get install gcc)")
    missing = [header for header in HEADERS if not Path(header).exists()]
    if missing:
        raise PluginBuildError(
            f"missing {', '.join(missing)}: apt-get install mosquitto-dev libssl-dev (make setup does this)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    # Built beside the target and renamed: a broker never loads a half-written library.
    with tempfile.TemporaryDirectory(dir=out.parent) as scratch:
        partial = Path(scratch) / out.name
        command = [
            cc,
            "-shared",
            "-fPIC",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-std=c11",
            "-o",
            str(partial),
            str(SOURCE),
            "-lcrypto",
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise PluginBuildError(f"{' '.join(command)} failed:\n{result.stderr}")
        os.replace(partial, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build kassa's Mosquitto plugin for the devices' listener.")
    parser.add_argument("--out", type=Path, required=True, help="where to write kassa_device_acl.so")
    args = parser.parse_args(argv)
    try:
        print(build(args.out))
    except PluginBuildError as exc:
        print(f"kassa_device_acl: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
