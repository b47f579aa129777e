"""The camera domain that the camera RPCs and the ingest workers share.

What a camera URL may be and where a camera may be (`urls`), the camera settings (`config`, the
`SIAMSTREAM_INGEST_*` variables), the cameras, targets, sessions and results kept in Redis (`directory`)
and a camera's connection states, backoff and staleness as pure functions of the time (`health`). The
camera RPCs (`siamstream_services.grpc_api.cameras`) write cameras here and the workers
(`siamstream_services.ingest`) read them, so neither needs the other.
"""
