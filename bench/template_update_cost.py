"""Cost of SiamMargin's online template update, as a share of a tracking step, side by side in one run.

    .venv/bin/python bench/template_update_cost.py [--trackers siamrpn_alex siamrpnpp_r50] [--frames 40]

For each tracker it exports two packages of the same seeded random weights into a temporary directory:
the plain one and an update-capable one (`template_update.enabled`, gate 0 so that EVERY frame updates:
the worst case; real gates update on confident frames only). Both track the same synthetic sequence with
`OfflineTracker` (crop, search.pt, post-processing, and for the second the update plan and update.pt),
alternating frame by frame through `siamstream.benchmark.harness.compare` (the first 2 frames warm up,
untimed) so that both see the same machine load. It prints the machine, the median step times with their
quartiles and ratio, the mean steps and the mean overhead of the update-capable step in percent, and the
update stage alone (median and quartiles).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from siamstream.benchmark.harness import MIN_WARMUP, compare, comparison_lines, summarize
from siamstream.benchmark.machine import describe_machine, machine_line
from siamstream.config import TemplateUpdateConfig, TrackerConfig
from siamstream.data.synthetic import SequenceSpec, generate_sequence
from siamstream.nn.network import build_network
from siamstream.package import export_package
from siamstream.registry import get_config
from siamstream.runner import PackageRunner
from siamstream.tracking.offline import OfflineTracker


def timed_tracker(config: TrackerConfig, root: Path) -> tuple[OfflineTracker, PackageRunner]:
    torch.manual_seed(0)
    package = export_package(build_network(config), config, root / config.template_update.model_dump_json())
    runner = PackageRunner(package)
    return OfflineTracker(config, runner), runner


def stepping(tracker: OfflineTracker, frames: list[np.ndarray]) -> Callable[[], object]:
    """An arm that tracks the next of `frames` on every call."""
    upcoming = iter(frames)
    return lambda: tracker.track(next(upcoming))


def measure(name: str, frames: int) -> None:
    plain_config = get_config(name)
    update_config = plain_config.model_copy(
        update={"template_update": TemplateUpdateConfig(enabled=True, gate=0.0)}
    )
    sequence = generate_sequence(SequenceSpec(width=320, height=240, length=frames, seed=3))
    images = [sequence.frame(index) for index in range(frames)]
    with tempfile.TemporaryDirectory() as directory:
        plain, _ = timed_tracker(plain_config, Path(directory))
        updating, runner = timed_tracker(update_config, Path(directory))
        plain.init(images[0], sequence.init_box.tolist())
        updating.init(images[0], sequence.init_box.tolist())
        stage_ms: list[float] = []
        original_update = runner.update

        def timed_update(*args):  # the update stage alone, inside the updating step
            start = time.perf_counter()
            result = original_update(*args)
            stage_ms.append((time.perf_counter() - start) * 1e3)
            return result

        # Patched on this one runner so that its step times the update inside itself.
        runner.update = timed_update  # type: ignore[method-assign]
        comparison = compare(
            {"plain": stepping(plain, images[1:]), "updating": stepping(updating, images[1:])},
            repeats=frames - 1 - MIN_WARMUP,
        )
    plain_step, update_step = comparison.arms["plain"].summary, comparison.arms["updating"].summary
    stage = summarize(
        stage_ms[MIN_WARMUP:]
    )  # gate 0: one update per step; the first ones ran in warm-up steps
    overhead = (update_step.mean_ms / plain_step.mean_ms - 1) * 100
    print(f"{name}: {comparison.repeats} timed steps per tracker after {MIN_WARMUP} warm-up steps")
    for line in comparison_lines(comparison):
        print(line)
    print(
        f"  mean step {plain_step.mean_ms:.1f} ms plain, {update_step.mean_ms:.1f} ms with update every "
        f"frame: overhead {overhead:+.1f}% of the mean step; update stage alone {stage.median_ms:.2f} "
        f"ms median (quartiles {stage.q1_ms:.2f}-{stage.q3_ms:.2f}, {stage.n} updates)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trackers", nargs="+", default=["siamrpn_alex", "siamrpnpp_r50"])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument(
        "--threads",
        type=int,
        help="torch intra-op threads (default: torch's); 1 keeps a busy machine's "
        "scheduler out of the small update stage",
    )
    args = parser.parse_args()
    if args.frames < MIN_WARMUP + 4:
        parser.error(f"--frames must be at least {MIN_WARMUP + 4}")
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    print(machine_line(describe_machine()))
    for name in args.trackers:
        measure(name, args.frames)


if __name__ == "__main__":
    main()
