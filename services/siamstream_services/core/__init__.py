"""The tracking-session core: what every process that tracks needs, whatever carries its frames.

`sessions.SessionManager` starts, advances, stops and lists sessions over an injected store and inference
backend; beside it are the frames it decodes (`frames`), the per-session options (`options`), what a
session record holds (`state`), per-stage timings (`timings`), the tracker packages served (`catalog`),
the domain errors with the gRPC status each is reported with (`errors`) and the Prometheus metrics
(`metrics`). The gRPC API (`siamstream_services.grpc_api`) and the camera worker
(`siamstream_services.ingest`) both drive this core and never import each other; nothing here imports
either of them, nor the wire messages.
"""
