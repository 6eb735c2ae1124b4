"""Sales ingest: MQTT up messages applied to the database exactly once, then acked.

The names below load on first use: importing a leaf module (`cloud_api.ingest.models`, which
the pushes and the licence book need) must not pull in the whole pipeline, which itself imports
the licence book.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cloud_api.ingest.apply import apply_batch
    from cloud_api.ingest.plan import AckPlan, DeviceAck
    from cloud_api.ingest.worker import IngestStats, IngestWorker, WorkerOptions

_WHERE = {
    "apply_batch": "cloud_api.ingest.apply",
    "AckPlan": "cloud_api.ingest.plan",
    "DeviceAck": "cloud_api.ingest.plan",
    "IngestStats": "cloud_api.ingest.worker",
    "IngestWorker": "cloud_api.ingest.worker",
    "WorkerOptions": "cloud_api.ingest.worker",
}
__all__ = ["AckPlan", "DeviceAck", "IngestStats", "IngestWorker", "WorkerOptions", "apply_batch"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
