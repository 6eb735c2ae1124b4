"""`make wheelhouse` (scripts/wheelhouse.py): a terminal without internet installs kassa from the wheelhouse alone.

The build reads requirements.lock and fetches through pip (its cache, else the index); the install runs with
--no-index and with pip's configuration and PIP_* variables removed, so only the wheelhouse can satisfy it.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

from tests.support.agent_process import REPO_ROOT

pytestmark = pytest.mark.slow

# Dev tools never reach a terminal: the wheelhouse holds the runtime closure only.
DEV_ONLY = ("pytest", "hypothesis", "ruff", "mypy", "uv", "schemathesis", "selenium", "httpx", "psycopg")


def offline_pip_environment() -> dict[str, str]:
    """The environment of a terminal's pip: no config files (their indexes and find-links), no PIP_* settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def test_offline_install_from_the_wheelhouse(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wheelhouse"
    built = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "wheelhouse.py"),
            "--out",
            str(wheelhouse),
            "--arch",
            platform.machine(),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout + built.stderr

    files = sorted(path.name for path in wheelhouse.iterdir())
    assert "SHA256SUMS" in files
    assert all(name.endswith(".whl") for name in files if name != "SHA256SUMS"), files
    assert any(name.startswith("kassa-") for name in files)
    assert not [name for name in files if name.split("-")[0].replace("_", "-") in DEV_ONLY]

    terminal = tmp_path / "terminal-venv"
    venv.create(terminal, with_pip=True)
    python = terminal / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-index", "--find-links", str(wheelhouse), "kassa"],
        capture_output=True,
        text=True,
        env=offline_pip_environment(),
        timeout=600,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr

    # Run from outside the checkout so the installed package, not the source tree, is imported.
    version = subprocess.run(
        [str(terminal / "bin" / "kassa-agent"), "--version"], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert version.returncode == 0, version.stderr
    project_version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert f"kassa-agent {project_version}" in version.stdout + version.stderr
    ctl_help = subprocess.run(
        [str(terminal / "bin" / "kassactl"), "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert ctl_help.returncode == 0, ctl_help.stderr
    assert "usage" in ctl_help.stdout.lower()
    where = subprocess.run(
        [str(python), "-c", "import agent; print(agent.__file__)"], capture_output=True, text=True, cwd=tmp_path
    )
    assert str(terminal) in where.stdout, where.stdout + where.stderr
