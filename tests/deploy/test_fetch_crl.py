"""broker/production/fetch-crl.sh, as kassa-broker-crl.timer runs it on the broker host: it installs
only a CRL the device CA signed, that is not past its nextUpdate and newer than the one in place,
and reloads the broker only when it installed one. (Fetched over file:// URLs here; over HTTPS
from the real API in test_certificate_lifecycle.py.)"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.deploy.tls_broker import fetch_crl

NOW = datetime.now(UTC).replace(microsecond=0)


def crl(
    pki: Path, number: int, *, key: ec.EllipticCurvePrivateKey | None = None, next_update: datetime | None = None
) -> bytes:
    """A CRL in the device CA's name, signed by its key unless another `key` is given."""
    ca = x509.load_pem_x509_certificate((pki / "device-ca.crt").read_bytes())
    signer = key or serialization.load_pem_private_key((pki / "device-ca.key").read_bytes(), None)
    built = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(NOW - timedelta(hours=2))
        .next_update(next_update or NOW + timedelta(days=30))
        .add_extension(x509.CRLNumber(number), critical=False)
        .sign(signer, hashes.SHA256())
    )  # type: ignore[arg-type]
    return built.public_bytes(serialization.Encoding.PEM)


class Fetch:
    def __init__(self, pki: Path, directory: Path) -> None:
        self.pki, self.directory = pki, directory
        self.out = directory / "device-crl.pem"
        self.reloads = directory / "reloads"

    def __call__(self, served: bytes | None) -> subprocess.CompletedProcess[str]:
        source = self.directory / "served.pem"
        if served is None:
            source.unlink(missing_ok=True)
        else:
            source.write_bytes(served)
        return fetch_crl(source.as_uri(), self.pki, self.out, f"echo reloaded >> {self.reloads}")

    def reload_count(self) -> int:
        return len(self.reloads.read_text().splitlines()) if self.reloads.exists() else 0


@pytest.fixture
def fetch(pki: Path, tmp_path: Path) -> Fetch:
    return Fetch(pki, tmp_path)


def test_a_newer_signed_crl_is_installed_once_and_the_broker_reloaded(fetch: Fetch, pki: Path) -> None:
    first = fetch((pki / "device-crl.pem").read_bytes())  # make-certs.sh's empty CRL, number 0
    assert first.returncode == 0 and "installed CRL number 0" in first.stdout, first.stderr
    newer = crl(pki, 7)
    result = fetch(newer)
    assert result.returncode == 0 and "installed CRL number 7" in result.stdout, result.stderr
    assert fetch.out.read_bytes() == newer and oct(fetch.out.stat().st_mode & 0o777) == "0o644"
    assert fetch.reload_count() == 2
    again = fetch(newer)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", ""), "unchanged: nothing installed, no reload"
    assert fetch.reload_count() == 2


@pytest.mark.parametrize("case", ["older", "forged", "expired", "garbage", "unreachable"])
def test_a_crl_that_must_not_be_installed_is_refused_and_changes_nothing(fetch: Fetch, pki: Path, case: str) -> None:
    installed = crl(pki, 5)
    assert fetch(installed).returncode == 0
    served, why = {
        "older": (crl(pki, 4), "not newer than the installed 5"),
        # The device CA's name and a higher number, but another key: a proxy or a stolen URL.
        "forged": (crl(pki, 99, key=ec.generate_private_key(ec.SECP256R1())), "did not return a CRL signed by"),
        "expired": (crl(pki, 6, next_update=NOW - timedelta(minutes=1)), "past its nextUpdate"),
        "garbage": (b"<html>502 Bad Gateway</html>\n", "did not return a CRL signed by"),
        "unreachable": (None, "could not fetch"),
    }[case]
    result = fetch(served)
    assert result.returncode == 1 and why in result.stderr, (result.stdout, result.stderr)
    assert fetch.out.read_bytes() == installed and fetch.reload_count() == 1
    assert [p.name for p in fetch.directory.iterdir() if p.name.startswith("device-crl.pem.")] == [], (
        "no temp file left"
    )
