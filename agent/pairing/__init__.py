"""Pairing a terminal with the cloud by code, ending with a broker client certificate.

`component` runs the flow, `keys` keeps the device's keys (the Ed25519 identity key is the
device's identity for other uses too), `client` speaks HTTPS to the cloud, `install` checks
and installs the certificate. The wire formats are in broker/contract/pairing.py.
"""

from agent.pairing.component import Pairing, PairingError, PairingState

__all__ = ["Pairing", "PairingError", "PairingState"]
