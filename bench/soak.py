"""Reliability soak: a real `siamstream serve` over a real redis-server, under concurrent clients that mix
normal tracking with dropped streams, expired deadlines and bad inputs, and a Redis restart half way.

    .venv/bin/python bench/soak.py [--minutes 10] [--streams 16] [--seed 0] [--json]

Run from the repository root; the code is `siamstream_services.benchmark.soak`.
Starts a redis-server (no persistence) and `siamstream serve` (embedded backend,
`SIAMSTREAM_STORE_URL=redis://...`) on free loopback ports. It serves the trained demo package
(models/packages/demo) when it exists, else siamrpn_alex with seeded random weights; `--package` serves
another package, `--tracker` a tracker with seeded random weights. `--streams` clients (one gRPC channel
each) then repeat, until `--minutes` have passed, actions drawn at random from:
- a normal stream: StartTrack on a frame of a generated 640x480 sequence (pre-encoded JPEGs), PushFrame
  of the frames after it (a push answered UNAVAILABLE is retried every second, under its frame number,
  until it gets another answer), StopTrack; now and then a garbage JPEG pushed midway, which the session
  must refuse (INVALID_ARGUMENT) and then go on tracking;
- a Track stream cancelled after a random number of messages (0: on opening), with or without reading
  the last answer, or now and then closed normally;
- a grpc.health.v1 Watch cancelled after 0 or 1 answers (WatchTrack needs a camera and an ingest worker:
  not exercised here);
- a unary call (ListTracks, GetTrack, PushFrame, StartTrack) with a deadline of 0.5 to 128 ms;
- a bad input: garbage or truncated JPEG, empty frame, raw pixels of the wrong size, boxes outside the
  frame, negative, huge, NaN or infinite, an out-of-range option, unknown session ids and trackers, a
  session id over the length limit, a Track stream that opens with a frame.
At half time redis-server is stopped by its pid and, `--redis-down-s` later, started again on the same port
with the same settings: calls in the gap fail UNAVAILABLE, sessions started before it are NOT_FOUND after
it (no persistence), and new sessions must work again. The service's session idle TTL is `--idle-ttl-s`
(60 s), so that the sessions the dropped streams leave behind expire within the run instead of piling up
to the per-owner limit.

Every `--window-s` (a minute) it prints the service's resident memory (VmRSS), open file descriptors and
threads, the PushFrame round-trip p50/p99 of the normal streams over that minute, the health answers of a
once-a-second Check, and the count of each gRPC status code the clients got that minute. At the end, a
summary: RSS growth from the end of minute 1 (after warm-up) to the end of the last minute, fd growth, p99
per minute, totals per status code and per request kind, outcomes no action expects (with their messages),
the recovery after the Redis restart, whether the service process stayed alive (its exit code if not),
whether it answered SERVING at the end, how it stopped on SIGTERM, and what it logged at WARNING and above.
`--json` prints the summary as one JSON object on stdout (the minute lines then go to stderr).

What the clients send is seeded: the n-th action of client k is the same in every run with the same seed
and options. How many actions fit into the run depends on the machine, and the outcomes on its timing.
Figures are side by side in one run on a shared machine: read them as trends (growth, recovery), not as
capacity.
"""

from __future__ import annotations

import sys

from siamstream_services.benchmark.soak.run import main

if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # The processes were stopped and the scratch directory removed on the way out.
        print("soak interrupted", file=sys.stderr)
        sys.exit(130)
