"""TODO(helper): cashiers tables."""

from __future__ import annotations

from cloud_api.models import Base  # noqa: F401
