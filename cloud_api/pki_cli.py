"""``kassa-cloud pki``: the device CA's CRL from the command line.

    kassa-cloud pki crl [--out FILE]                       print (or write) the newest CRL
    kassa-cloud pki revoke --certificate FILE [--reason R] [--out FILE]

`revoke` is for device certificates the cloud did not issue (made with make-certs.sh): it names
the certificate's serial in the cloud's CRL, which from then on is the one the broker reads.
Devices paired through the cloud are revoked with the API (POST
/companies/{id}/devices/{device_id}/certificates/revoke).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cloud_api import schema
from cloud_api.pairing.certificates import CaUnavailable, load_device_ca
from cloud_api.pairing.revocation import current_crl, import_revoked, issue_crl, write_crl_file
from cloud_api.settings import CloudSettings
from cloud_api.tenancy.tokens import utcnow


def run_pki_command(settings: CloudSettings, engine: Engine, args: dict[str, Any]) -> int:
    target = Path(args["out"]) if args.get("out") else settings.device_crl_file
    now = utcnow()
    try:
        schema.upgrade(engine)
        with Session(engine) as session:
            if args["action"] == "revoke":
                certificate, device_id = _read_certificate(args.get("certificate"))
                ca = load_device_ca(settings)
                if certificate.issuer != ca.certificate.subject:
                    print(
                        f"kassa-cloud pki revoke: {args['certificate']} was not issued by the device CA "
                        f"({ca.certificate.subject.rfc4514_string()})",
                        file=sys.stderr,
                    )
                    return 2
                fresh = import_revoked(session, certificate, device_id, args.get("reason") or "revoked", now)
                crl = issue_crl(session, ca, now)
                session.commit()
                print(
                    f"{'revoked' if fresh else 'already revoked'}: {device_id} serial "
                    f"{certificate.serial_number:x}; CRL {crl.number}",
                    file=sys.stderr,
                )
            else:
                crl = current_crl(session, settings, now)
            written = write_crl_file(target, crl.crl_pem)
    except CaUnavailable as exc:
        print(f"kassa-cloud pki: {exc}", file=sys.stderr)
        return 78
    except (OSError, ValueError) as exc:
        print(f"kassa-cloud pki: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    if written is None:
        sys.stdout.write(crl.crl_pem)
    else:
        print(f"CRL {crl.number} written to {written}", file=sys.stderr)
    return 0


def _read_certificate(path: str | None) -> tuple[x509.Certificate, str]:
    if not path:
        raise ValueError("--certificate FILE is required: the device certificate (PEM) to revoke")
    try:
        certificate = x509.load_pem_x509_certificate(Path(path).read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise ValueError(f"{path} is not a PEM certificate") from None
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1:
        raise ValueError(f"{path} has no single CN (device id)")
    return certificate, str(names[0].value)
