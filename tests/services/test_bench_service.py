"""`siamstream bench service`: one JSON object with the documented keys (no timing assertions)."""

from __future__ import annotations

import argparse
import json

import pytest

from siamstream.cli.main import build_parser
from siamstream_services.benchmark.cli import parse_stream_counts


def test_bench_service_prints_the_documented_json(capsys: pytest.CaptureFixture[str]) -> None:
    arguments = ["bench", "service", "--tracker", "siamrpn_alex", "--backend", "embedded"]
    options = ["--streams", "1,2", "--frames", "5", "--overhead-frames", "6", "--json"]
    args = build_parser().parse_args([*arguments, *options])
    assert args.run(args) == 0

    report = json.loads(capsys.readouterr().out)
    assert {"search_forward_ms_p50", "service_overhead_ms", "runs"} <= set(report)
    assert report["tracker"] == "siamrpn_alex" and report["backend"] == "embedded" and report["frames"] == 5
    assert report["search_forward_ms_p50"] > 0
    assert [run["streams"] for run in report["runs"]] == [1, 2]
    for run in report["runs"]:
        assert set(run) == {"streams", "push_p50_ms", "push_p99_ms", "frames_per_s"}
        assert 0 < run["push_p50_ms"] <= run["push_p99_ms"]
        assert run["frames_per_s"] > 0
    assert report["push_ms_p50"] > 0 and report["overhead_frames"] == 6
    low, high = report["service_overhead_ci95_ms"]
    assert low <= report["service_overhead_ms"] <= high
    stages = report["server_stage_ms_p50"]
    assert set(stages) == {"decode_ms", "crop_ms", "inference_ms", "postprocess_ms", "store_ms", "total_ms"}
    assert all(value > 0 for value in stages.values())
    assert stages["inference_ms"] < stages["total_ms"]
    assert 0 < report["transport_ms_p50"] < report["push_ms_p50"]
    # The floor's parts are timed on their own, after each push: each is less than a whole push.
    assert 0 < report["empty_rpc_ms_p50"] < report["push_ms_p50"]
    assert 0 < report["decode_alone_ms_p50"] < report["push_ms_p50"]


def test_stream_counts_parse_and_refuse_nonsense() -> None:
    assert parse_stream_counts("1,4,16") == [1, 4, 16]
    for text in ("0,4", "one", "1,,2"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_stream_counts(text)
