"""Sales ingest: MQTT up messages applied to the database exactly once, then acked."""

from cloud_api.ingest.apply import apply_batch
from cloud_api.ingest.plan import AckPlan, DeviceAck
from cloud_api.ingest.worker import IngestStats, IngestWorker, WorkerOptions

__all__ = ["AckPlan", "DeviceAck", "IngestStats", "IngestWorker", "WorkerOptions", "apply_batch"]
