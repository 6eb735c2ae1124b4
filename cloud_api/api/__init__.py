"""The admin HTTP API, one router per area (see docs/cloud-api.md)."""
