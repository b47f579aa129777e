"""Cost of SiamMargin's online template update, as a share of a tracking step, side by side in one run.

    .venv/bin/python bench/template_update_cost.py [--trackers siamrpn_alex siamrpnpp_r50] [--frames 40]

For each tracker it exports two packages of the same seeded random weights into a temporary directory:
the plain one and an update-capable one (`template_update.enabled`, gate 0 so that EVERY frame updates:
the worst case; real gates update on confident frames only). Both track the same synthetic sequence with
`OfflineTracker` (crop, search.pt, post-processing, and for the second the update plan and update.pt),
alternating frame by frame so that both see the same machine load. It prints the median and mean step
times, the mean overhead of the update-capable step in percent, and the update stage alone.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from siamstream.config import TemplateUpdateConfig, TrackerConfig
from siamstream.data.synthetic import SequenceSpec, generate_sequence
from siamstream.nn.network import build_network
from siamstream.package import export_package
from siamstream.registry import get_config
from siamstream.runner import TorchScriptRunner
from siamstream.tracking.offline import OfflineTracker


def timed_tracker(config: TrackerConfig, root: Path) -> tuple[OfflineTracker, TorchScriptRunner]:
    torch.manual_seed(0)
    package = export_package(build_network(config), config, root / config.template_update.model_dump_json())
    runner = TorchScriptRunner(package)
    return OfflineTracker(config, runner), runner


def measure(name: str, frames: int) -> None:
    plain_config = get_config(name)
    update_config = plain_config.model_copy(
        update={"template_update": TemplateUpdateConfig(enabled=True, gate=0.0)}
    )
    sequence = generate_sequence(SequenceSpec(width=320, height=240, length=frames, seed=3))
    with tempfile.TemporaryDirectory() as directory:
        plain, _ = timed_tracker(plain_config, Path(directory))
        updating, runner = timed_tracker(update_config, Path(directory))
        first = sequence.frame(0)
        plain.init(first, sequence.init_box)
        updating.init(first, sequence.init_box)
        plain_ms: list[float] = []
        update_ms: list[float] = []
        stage_ms: list[float] = []
        original_update = runner.update

        def timed_update(*args):  # the update stage alone, inside the updating step
            start = time.perf_counter()
            result = original_update(*args)
            stage_ms.append((time.perf_counter() - start) * 1e3)
            return result

        runner.update = timed_update  # type: ignore[method-assign]
        for index in range(1, frames):
            frame = sequence.frame(index)
            for tracker, times in ((plain, plain_ms), (updating, update_ms)):
                start = time.perf_counter()
                tracker.track(frame)
                times.append((time.perf_counter() - start) * 1e3)
    warm_plain, warm_update = plain_ms[2:], update_ms[2:]  # first calls run the TorchScript optimiser
    overhead = (statistics.mean(warm_update) / statistics.mean(warm_plain) - 1) * 100
    print(
        f"{name}: step {statistics.median(warm_plain):.1f} ms median / "
        f"{statistics.mean(warm_plain):.1f} mean; "
        f"with update every frame {statistics.median(warm_update):.1f} / {statistics.mean(warm_update):.1f}; "
        f"overhead {overhead:+.1f}% of the mean step; update stage alone "
        f"{statistics.median(stage_ms[2:]):.2f} ms median ({len(stage_ms)} updates)"
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
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name in args.trackers:
        measure(name, args.frames)


if __name__ == "__main__":
    main()
