"""`siamstream bench service`: the session service's latency and throughput beside the raw model."""
