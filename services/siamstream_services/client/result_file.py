"""result.json of a track made through the service, in the layout of `siamstream track`.

`{"meta": {...}, "frames": [{"frame": 0, "bbox": [x, y, w, h], "best_score": null, ...}, ...]}`: every
frame entry has `siamstream track`'s keys `frame`, `bbox`, `best_score` and `status` (frame 0 is the
initial box without a score), but not `target` (a service track follows one target), and adds what only
the service knows: the client's `round_trip_ms` and the server's `server_ms` per stage.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from siamstream.cli.track import result_record

from .results import FrameResult


def frame_record(result: FrameResult, init_box: Sequence[float]) -> dict:
    """One entry of `frames`; frame 0 carries `init_box` exactly (the service echoes it as float32)."""
    record = result_record(result.track_result())
    if result.frame_index == 0:
        record["bbox"] = [float(value) for value in init_box]
    record["status"] = result.status.value
    record["round_trip_ms"] = result.round_trip_ms
    record["server_ms"] = result.server_ms
    return record


def write_result_file(path: Path, meta: dict, records: list[dict]) -> None:
    """Write `{"meta": meta, "frames": records}` to `path` (parent folders are created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "frames": records}, indent=1) + "\n")
