"""Camera ingestion: RTSP readers, per-camera watchdogs, Redis leases on cameras, results to Redis streams."""
