"""Cost of SiamMargin's one more search and adaptive search region per tracking step, side by side.

    .venv/bin/python bench/search_options_cost.py [--tracker siammargin_small] [--frames 30] [--threads 1]

One package of the tracker (seeded random weights) tracks one synthetic 640x480 sequence under several
configs, each an `OfflineTracker` with its own `TorchScriptRunner` (so each TorchScript module settles on
its own crop sides), stepping frame by frame in turn, the order rotated every frame, so that all see the
same machine load. The options are pinned to their worst case, the cost a frame pays when they act:
- `one_more_search`: `second_search_below` 1.0, every frame is searched twice;
- `adaptive +k`: `region_max_steps` k with both thresholds at 1.0, so the crop grows to its largest side
  (255 + 64k for a 255 crop) after k frames and stays there;
- `both +3`: the two together, every frame searched twice at the largest side.
A real track pays these only on frames that score low (below 0.85 by default). The template update is
off in every config (see `measure`); `bench/template_update_cost.py` measures it. The first frames (the
growth, and TorchScript's first optimising runs) are left out; it prints per config the median step, its
interquartile range and the ratio of medians to the plain step.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from siamstream.config import TrackerConfig
from siamstream.data.synthetic import SequenceSpec, generate_sequence
from siamstream.nn.network import build_network
from siamstream.package import export_package
from siamstream.registry import get_config
from siamstream.runner import TorchScriptRunner
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


def measure(name: str, frames: int) -> None:
    # Without the template update: the configs that search more find higher scores, which would open
    # its gate on more frames and charge its cost to the search options.
    registered = get_config(name)
    base = registered.model_copy(
        update={"template_update": registered.template_update.model_copy(update={"enabled": False})}
    )
    sequence = generate_sequence(SequenceSpec(width=640, height=480, length=frames, seed=3))
    with tempfile.TemporaryDirectory() as directory:
        torch.manual_seed(0)
        package = export_package(build_network(base).eval(), base, Path(directory) / name)
        trackers = {
            label: OfflineTracker(config, TorchScriptRunner(package))
            for label, config in configs(base).items()
        }
        step_ms: dict[str, list[float]] = {label: [] for label in trackers}
        for tracker in trackers.values():
            tracker.init(sequence.frame(0), sequence.init_box)
        labels = list(trackers)
        for index in range(1, frames):
            frame = sequence.frame(index)
            shift = index % len(labels)
            for label in labels[shift:] + labels[:shift]:
                start = time.perf_counter()
                trackers[label].track(frame)
                step_ms[label].append((time.perf_counter() - start) * 1e3)
    plain = statistics.median(step_ms["plain"][WARM_UP_FRAMES:])
    print(f"{name}: {frames - 1 - WARM_UP_FRAMES} timed steps per config")
    print(f"{'config':<18}{'median ms':>10}{'IQR ms':>16}{'x plain':>9}")
    for label, times in step_ms.items():
        warm = times[WARM_UP_FRAMES:]
        q1, _, q3 = statistics.quantiles(warm, n=4)
        median = statistics.median(warm)
        print(f"{label:<18}{median:>10.1f}{f'{q1:.1f}-{q3:.1f}':>16}{median / plain:>9.2f}")


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
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    measure(args.tracker, args.frames)


if __name__ == "__main__":
    main()
