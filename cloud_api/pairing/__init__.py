"""Pairing terminals by code: registrations, claims, device certificates (docs/cloud-api.md)."""
