"""The benchmark harness: arms alternate call by call, warm-up calls are not timed, medians and quartiles
are right on hand values; `bench tracker` routes its comparisons through it. No timing assertions."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from siamstream.benchmark import harness, tracker
from siamstream.benchmark.harness import (
    Comparison,
    compare,
    comparison_lines,
    median_interval,
    rotating_rounds,
    summarize,
)
from siamstream.benchmark.machine import describe_machine
from siamstream.data.synthetic import SequenceSpec, generate_sequence
from siamstream.machine import cpu_model
from siamstream.nn.stages import SearchStage
from siamstream.package import export_package
from siamstream.registry import get_config
from siamstream.runner import PackageRunner


class FakeClock:
    """A clock in seconds that only the arms move."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def timed_arm(clock: FakeClock, seconds: list[float], calls: list[str], name: str):
    """An arm that records its call and advances `clock` by the next of `seconds`."""
    durations = iter(seconds)

    def arm() -> None:
        calls.append(name)
        clock.now += next(durations)

    return arm


def test_arms_alternate_call_by_call_in_rotating_order() -> None:
    calls: list[str] = []
    arms = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    compare(arms, repeats=3, warmup=2)
    rounds = [calls[i : i + 3] for i in range(0, len(calls), 3)]
    assert rounds == [list("abc"), list("bca"), list("cab"), list("abc"), list("bca")]
    assert list(rotating_rounds(["x", "y"], 3, first_round=1)) == [["y", "x"], ["x", "y"], ["y", "x"]]


def test_warm_up_calls_are_left_out_and_the_figures_match_hand_values() -> None:
    clock = FakeClock()
    calls: list[str] = []
    warm_up = [100.0, 100.0]  # seconds: would dominate every figure if they were timed
    arms = {
        "fast": timed_arm(clock, [*warm_up, 0.004, 0.001, 0.003, 0.002, 0.005], calls, "fast"),
        "slow": timed_arm(clock, [*warm_up, 0.012, 0.006, 0.010, 0.008, 0.100], calls, "slow"),
    }
    comparison = compare(arms, repeats=5, warmup=2, clock=clock)
    assert calls.count("fast") == calls.count("slow") == 7
    fast, slow = comparison.arms["fast"], comparison.arms["slow"]
    assert fast.summary.n == slow.summary.n == 5
    assert fast.summary.median_ms == pytest.approx(3.0)
    assert (fast.summary.q1_ms, fast.summary.q3_ms) == pytest.approx((2.0, 4.0))
    assert fast.summary.iqr_ms == pytest.approx(2.0)
    assert fast.summary.mean_ms == pytest.approx(3.0)
    # The median and quartiles ignore the one slow outlier that moves the mean.
    assert slow.summary.median_ms == pytest.approx(10.0)
    assert (slow.summary.q1_ms, slow.summary.q3_ms) == pytest.approx((8.0, 12.0))
    assert slow.summary.mean_ms == pytest.approx(27.2)
    assert comparison.reference == "fast"
    assert fast.ratio == pytest.approx(1.0) and slow.ratio == pytest.approx(10.0 / 3.0)


def test_ratios_divide_by_the_chosen_reference_arm() -> None:
    clock = FakeClock()
    calls: list[str] = []
    arms = {
        "single": timed_arm(clock, [0.0, 0.0, 0.030, 0.030, 0.030], calls, "single"),
        "batched": timed_arm(clock, [0.0, 0.0, 0.010, 0.010, 0.010], calls, "batched"),
    }
    comparison = compare(arms, repeats=3, reference="batched", clock=clock)
    assert comparison.arms["single"].ratio == pytest.approx(3.0)
    assert comparison.arms["batched"].ratio == pytest.approx(1.0)
    assert list(comparison.arms) == ["single", "batched"]


def test_quartiles_interpolate_like_numpy() -> None:
    summary = summarize([1.0, 2.0, 3.0, 4.0])
    assert summary.median_ms == pytest.approx(2.5)
    assert (summary.q1_ms, summary.q3_ms) == pytest.approx((1.75, 3.25))
    samples = np.random.default_rng(0).exponential(size=17)
    summary = summarize(list(samples))
    np.testing.assert_allclose(
        [summary.q1_ms, summary.median_ms, summary.q3_ms], np.percentile(samples, [25, 50, 75])
    )


def test_the_median_interval_holds_the_median_and_narrows_with_more_samples() -> None:
    assert median_interval([3.0] * 10) == (3.0, 3.0)
    rng = np.random.default_rng(1)
    few = rng.permutation(np.arange(1.0, 100.0))  # median 50
    low, high = median_interval(list(few))
    assert 35 < low < 50 < high < 65
    many = rng.permutation(np.repeat(np.arange(1.0, 100.0), 16))  # the same median, 16 times the samples
    many_low, many_high = median_interval(list(many))
    assert many_low <= 50 <= many_high and many_high - many_low < (high - low) / 2
    with pytest.raises(ValueError, match="at least 2 samples"):
        median_interval([1.0])


def test_too_few_calls_or_an_unknown_reference_are_refused() -> None:
    arms = {"a": lambda: None}
    with pytest.raises(ValueError, match="warmup must be at least 2"):
        compare(arms, repeats=5, warmup=1)
    with pytest.raises(ValueError, match="repeats must be at least 3"):
        compare(arms, repeats=2)
    with pytest.raises(ValueError, match="reference arm 'b'"):
        compare(arms, repeats=3, reference="b")
    with pytest.raises(ValueError, match="at least one arm"):
        compare({}, repeats=3)
    with pytest.raises(ValueError, match="at least 2 samples"):
        summarize([1.0])


def test_the_collector_is_off_while_arms_run_and_restored_after() -> None:
    seen: list[bool] = []
    assert gc.isenabled()
    compare({"a": lambda: seen.append(gc.isenabled())}, repeats=3)
    assert seen == [False] * 5 and gc.isenabled()

    def failing() -> None:
        raise RuntimeError("arm failed")

    with pytest.raises(RuntimeError):
        compare({"a": failing}, repeats=3)
    assert gc.isenabled()


def test_a_comparison_survives_its_json_form_and_prints_every_arm() -> None:
    clock = FakeClock()
    arms = {
        "scripted": timed_arm(clock, [0.0, 0.0, 0.002, 0.002, 0.004], [], "scripted"),
        "eager": timed_arm(clock, [0.0, 0.0, 0.004, 0.006, 0.006], [], "eager"),
    }
    comparison = compare(arms, repeats=3, clock=clock)
    assert Comparison.from_dict(comparison.to_dict()) == comparison
    lines = comparison_lines(comparison)
    assert "x scripted" in lines[0]
    assert lines[1].split() == ["scripted", "2.00", "2.00-3.00", "1.00"]
    assert lines[2].split() == ["eager", "6.00", "5.00-6.00", "3.00"]


def test_the_machine_names_its_cpu(tmp_path: Path) -> None:
    cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu avx2 avx512_bf16\n"
    assert cpu_model(cpuinfo) == "AMD EPYC 9B14"
    assert cpu_model("processor\t: 0\n") == "unknown"
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    machine = describe_machine(tmp_path / "cpuinfo")
    assert machine["cpu"] == "AMD EPYC 9B14"
    assert machine["native_bf16_flags"] == ["avx512_bf16"]
    assert machine["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert machine["threads"] == torch.get_num_threads()


TRACKER = "siamban_small"  # the fastest network of the registry: the tracker tests time nothing


def test_the_eager_arm_runs_the_same_network_on_the_same_crops(tmp_path: Path) -> None:
    config = get_config(TRACKER)
    network = tracker.random_network(config)
    runner = PackageRunner(export_package(network, config, tmp_path / TRACKER))
    sequence = generate_sequence(SequenceSpec(length=2, seed=0))
    frames = [sequence.frame(0), sequence.frame(1)]
    inputs = tracker.search_inputs(config, runner, frames, tuple(float(v) for v in sequence.init_box))
    scripted = runner.search(inputs.embedding, inputs.crops)
    eager = tracker.eager_search(SearchStage(network))(inputs.embedding, inputs.crops)
    assert len(scripted) == len(eager)
    for a, b in zip(scripted, eager, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_bench_tracker_compares_through_the_harness(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[list[str], int, int]] = []

    def recording_compare(arms, repeats, warmup=harness.MIN_WARMUP, reference=None):
        compared.append((list(arms), repeats, warmup))
        return compare(arms, repeats, warmup, reference)

    monkeypatch.setattr(tracker, "compare", recording_compare)
    monkeypatch.setattr(tracker, "mkldnn_bf16_supported", lambda: False)
    report = tracker.run(get_config(TRACKER), 3, None, repeats=3, warmup=2, batch_sizes=(2,))
    assert compared == [
        (["template"], 3, 2),
        (["package", "eager"], 3, 2),
        (["batched", "single"], 3, 2),
    ]
    assert report["bf16"] == {"skipped": tracker.bf16_skip_reason(None)}
    assert "_is_mkldnn_bf16_supported() is False" in report["bf16"]["skipped"]
    assert set(report["steps"]) == {"crop", "search", "post", "step"}
    assert all(report["steps"][stage]["n"] == 3 for stage in report["steps"])
    assert report["template"]["n"] == 3
    (batch,) = report["batch"]
    assert batch["templates"] == 2 and batch["reference"] == "batched"
    assert batch["speedup"] == pytest.approx(
        batch["arms"]["single"]["median_ms"] / batch["arms"]["batched"]["median_ms"]
    )
    assert report["eager"]["speedup"] == report["eager"]["arms"]["eager"]["ratio"]
    assert report["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert report["stage_form"].startswith("TorchScript")  # no compiled stages asked for


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--warmup", "1"], "--warmup must be at least 2"),
        (["--repeats", "2"], "--repeats must be at least 3"),
        (["--frames", "2"], "--frames must be at least 3"),
        (["--batch-sizes", "4,0"], "batch sizes must be at least 1"),
    ],
)
def test_bench_tracker_refuses_too_few_calls(option: list[str], message: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "siamstream.cli", "bench", "tracker", "--tracker", TRACKER, *option],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 2 and message in completed.stderr
