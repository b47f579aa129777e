"""The ingest worker: RTSP readers, per-camera watchdogs, Redis leases on cameras, results to Redis streams.

Cameras come from the shared camera directory (`siamstream_services.cameras`) and are tracked through the
session core (`siamstream_services.core`), opened from settings by `siamstream_services.wiring`; the
worker never goes through the gRPC API.
"""
