from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from cloud_api import signing_keys
from tests.support.agent_process import REPO_ROOT


def kassa_cloud(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloud_api.main", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )


def test_generate_writes_0600_and_never_overwrites(tmp_path: Path) -> None:
    key_file = tmp_path / "signing.pem"
    first = kassa_cloud("keys", "generate", "--key-file", str(key_file), "--key-id", "c1")
    assert first.returncode == 0, first.stderr
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert 'cloud_keys = { "c1" = "' in first.stdout
    again = kassa_cloud("keys", "generate", "--key-file", str(key_file), "--key-id", "c1")
    assert again.returncode == 1 and "never overwritten" in again.stderr
    shown = kassa_cloud("keys", "show", "--key-file", str(key_file), "--key-id", "c1")
    assert shown.stdout.splitlines()[-1] == first.stdout.splitlines()[-1], "same public key"


def test_loading_a_readable_key_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "signing.pem"
    signing_keys.generate(key_file, "c1")
    os.chmod(key_file, 0o644)
    with pytest.raises(signing_keys.SigningKeyError, match="chmod 600"):
        signing_keys.load(key_file, "c1")


def test_provisioning_qr_png_and_bad_input(tmp_path: Path) -> None:
    key_file = tmp_path / "signing.pem"
    signing_keys.generate(key_file, "c1")
    out = tmp_path / "code.png"
    made = kassa_cloud(
        "provisioning-qr",
        "--key-file",
        str(key_file),
        "--key-id",
        "c1",
        "--point-of-sale",
        "POS-1",
        "--language",
        "fr",
        "--room",
        "Salle 1",
        "--broker",
        "mqtt.example:8883",
        "--out",
        str(out),
    )
    assert made.returncode == 0, made.stderr
    with Image.open(out) as image:
        assert image.size[0] > 100 and image.size[0] == image.size[1]
    bad_broker = kassa_cloud("provisioning-qr", "--key-file", str(key_file), "--broker", "no-port", "--out", str(out))
    assert bad_broker.returncode == 2 and "HOST:PORT" in bad_broker.stderr
    bad_language = kassa_cloud(
        "provisioning-qr", "--key-file", str(key_file), "--language", "Deutsch", "--out", str(out)
    )
    assert bad_language.returncode == 2 and "language" in bad_language.stderr
    rooms = [arg for n in range(50) for arg in ("--room", f"Salle des fêtes numéro {n:02d} — aile {'ouest' * 5}"[:60])]
    too_big = kassa_cloud("provisioning-qr", "--key-file", str(key_file), *rooms, "--out", str(tmp_path / "big.png"))
    assert (
        too_big.returncode == 2 and "do not fit in one QR code" in too_big.stderr and "Traceback" not in too_big.stderr
    )
    assert not (tmp_path / "big.png").exists()
