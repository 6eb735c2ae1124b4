"""Fixtures of the cloud API tests (tests/cloud/test_api_*.py); see api_support.py."""

from tests.cloud.api_support import api  # noqa: F401 - a fixture, found by name
