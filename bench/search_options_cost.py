"""Cost of SiamMargin's one more search and adaptive search region per tracking step, side by side.

    .venv/bin/python bench/search_options_cost.py [--tracker siammargin_small] [--frames 30] [--threads 1]

One package of the tracker (seeded random weights) tracks one synthetic 640x480 sequence under several
configs, each an `OfflineTracker` with its own `PackageRunner` (so each TorchScript module settles on
its own crop sides), stepping frame by frame in turn, the order rotated every frame, so that all see the
same machine load. The options are pinned to their worst case, the cost a frame pays when they act:
- `one_more_search`: `second_search_below` 1.0, every frame is searched twice;
- `adaptive +k`: `region_max_steps` k with both thresholds at 1.0, so the crop grows to its largest side
  (255 + 64k for a 255 crop) after k frames and stays there;
- `both +3`: the two together, every frame searched twice at the largest side.
A real track pays these only on frames that score low (below 0.85 by default). The template update is
off in every config (see `measure`); `bench/template_update_cost.py` measures it. The first frames (the
growth, and TorchScript's first optimising runs) are the harness's warm-up calls
(`siamstream.benchmark.harness.compare`, one frame per call and config, order rotated every frame); it
prints the machine, then per config the median step, its quartiles and the ratio of medians to the plain
step.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from siamstream.benchmark.harness import compare, comparison_lines
from siamstream.benchmark.machine import describe_machine, machine_line
from siamstream.config import TrackerConfig
from siamstream.data.synthetic import SequenceSpec, generate_sequence
from siamstream.nn.network import build_network
from siamstream.package import export_package
from siamstream.registry import get_config
from siamstream.runner import PackageRunner
from siamstream.tracking.offline import OfflineTracker

# Frames left out at the start: the largest growth (3 frames) and two optimising runs of each side.
WARM_UP_FRAMES = 6
ALWAYS = 1.0  # a threshold no score stays at or above: the option acts on every frame


def configs(base: TrackerConfig) -> dict[str, TrackerConfig]:
    def with_search(**search: object) -> TrackerConfig:
        return base.model_copy(update={"search": base.search.model_copy(update=search)})

    pinned = {"adaptive_region": True, "grow_below": ALWAYS, "normal_at": ALWAYS}
    return {
        "plain": base,
        "one_more_search": with_search(one_more_search=True, second_search_below=ALWAYS),
        **{f"adaptive +{k}": with_search(**pinned, region_max_steps=k) for k in (1, 2, 3)},
        "both +3": with_search(
            **pinned, region_max_steps=3, one_more_search=True, second_search_below=ALWAYS
        ),
    }


def stepping(tracker: OfflineTracker, frames: list[np.ndarray]) -> Callable[[], object]:
    """An arm that tracks the next of `frames` on every call."""
    upcoming = iter(frames)
    return lambda: tracker.track(next(upcoming))


def measure(name: str, frames: int) -> None:
    # Without the template update: the configs that search more find higher scores, which would open
    # its gate on more frames and charge its cost to the search options.
    registered = get_config(name)
    base = registered.model_copy(
        update={"template_update": registered.template_update.model_copy(update={"enabled": False})}
    )
    sequence = generate_sequence(SequenceSpec(width=640, height=480, length=frames, seed=3))
    images = [sequence.frame(index) for index in range(frames)]
    with tempfile.TemporaryDirectory() as directory:
        torch.manual_seed(0)
        package = export_package(build_network(base).eval(), base, Path(directory) / name)
        arms = {}
        for label, config in configs(base).items():
            tracker = OfflineTracker(config, PackageRunner(package))
            tracker.init(images[0], sequence.init_box.tolist())
            arms[label] = stepping(tracker, images[1:])
        comparison = compare(arms, repeats=frames - 1 - WARM_UP_FRAMES, warmup=WARM_UP_FRAMES)
    print(f"{name}: {comparison.repeats} timed steps per config after {WARM_UP_FRAMES} warm-up steps")
    for line in comparison_lines(comparison):
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracker", default="siammargin_small")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.frames <= WARM_UP_FRAMES + 4:
        parser.error(f"--frames must be more than {WARM_UP_FRAMES + 4}")
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    print(machine_line(describe_machine()))
    measure(args.tracker, args.frames)


if __name__ == "__main__":
    main()
