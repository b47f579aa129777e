"""A small asyncio client of the `siamstream.v1` tracking API and `siamstream client`.

`client.TrackingClient` makes the calls (`in_flight` bounds its wait for each `Track` answer), `frames`
encodes frames, `results` holds what comes back and `result_file` writes it in the offline tracker's
layout. The package itself imports nothing: it is loaded whenever the `siamstream` parser is built (to
register `siamstream client`), which must not load grpc, numpy and OpenCV.
"""
