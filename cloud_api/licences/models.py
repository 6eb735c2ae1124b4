"""TODO(helper): licences tables."""

from __future__ import annotations

from cloud_api.models import Base  # noqa: F401
