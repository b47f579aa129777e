"""The gRPC front end: `siamstream.v1.TrackingService` over the session core, and the process serving it.

The servicer (`servicer`) and the camera RPCs (`cameras`) map requests onto `core.SessionManager` and the
camera directory; around them sit API keys (`auth`), the interceptors (`interceptors`: authentication, one
log line and the metrics per call), grpc.health.v1 (`health`, `probe`), TLS (`tls`) and the server with its
drain (`server`), built from settings through `siamstream_services.wiring`. Nothing outside this package
imports it but the commands and the in-process demo service.
"""
