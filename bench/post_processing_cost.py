"""Post-processing and crop time of one tracking step per post-processing family, side by side in one run.

    .venv/bin/python bench/post_processing_cost.py [--trackers siamrpnpp_r50 siamban_r50 ...]
        [--repeats 300] [--threads 1]

For each tracker (default: one per family, SiamRPN++, SiamBAN, SiamCAR, SiamFC) the eager network with
seeded random weights (the post-processing's cost does not depend on them) runs its template and search
stages once on a synthetic 1280x720 sequence: the template on frame 0, the search crops of frame 1. Then
`siamstream.benchmark.harness.compare` times, the trackers' calls alternating call by call (2 warm-up
calls each, then `--repeats` timed):
- post-processing: `finish_search` on those head outputs (decoding, penalties, window, the new state);
- crops: `prepare_search` of frame 1 (one search crop; SiamFC's three scales are three crops).
It prints the machine, then per tracker the median, the quartiles and the ratio to the first tracker.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
import torch

from siamstream.benchmark.harness import MIN_REPEATS, compare, comparison_lines
from siamstream.benchmark.machine import describe_machine, machine_line
from siamstream.benchmark.tracker import eager_search, random_network
from siamstream.data.synthetic import SequenceSpec, SyntheticSequence, generate_sequence
from siamstream.nn.stages import SearchStage, TemplateStage
from siamstream.registry import get_config
from siamstream.tracking.step import finish_search, init_track, prepare_search

FAMILIES = ["siamrpnpp_r50", "siamban_r50", "siamcar_r50", "siamfc_alexnet"]


def step_calls(name: str, sequence: SyntheticSequence) -> tuple[Callable[[], object], Callable[[], object]]:
    """(post-processing, crops) of `name`'s step on frame 1 of `sequence`, as zero-argument calls."""
    config = get_config(name)
    network = random_network(config)
    frames = [sequence.frame(0), sequence.frame(1)]
    state, template = init_track(config, frames[0], sequence.init_box.tolist())
    with torch.inference_mode():
        embedding = TemplateStage(network)(
            torch.from_numpy(template.crop), torch.from_numpy(template.box_prior)
        )
    request = prepare_search(config, state, frames[1])
    rows = embedding.repeat(request.crops.shape[0], 1).numpy()
    outputs = eager_search(SearchStage(network))(rows, request.crops)
    return (
        lambda: finish_search(config, state, request, outputs),
        lambda: prepare_search(config, state, frames[1]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trackers", nargs="+", default=FAMILIES, help="registry names")
    parser.add_argument("--repeats", type=int, default=300, help="timed calls per tracker")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.repeats < MIN_REPEATS:
        parser.error(f"--repeats must be at least {MIN_REPEATS}")
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    # With random weights SiamBAN's box regression can overflow float32; the step then holds the previous
    # box after the same decoding work, so the timing stands, and numpy's warning is only noise here.
    np.seterr(over="ignore")
    print(machine_line(describe_machine()))
    sequence = generate_sequence(SequenceSpec(width=1280, height=720, length=2, seed=0))
    post, crops = {}, {}
    for name in args.trackers:
        label = f"{name} ({get_config(name).family})"
        post[label], crops[label] = step_calls(name, sequence)
    for title, arms in (("post-processing", post), ("crops", crops)):
        comparison = compare(arms, repeats=args.repeats)
        print(f"{title} of one step on 1280x720 frames, {args.repeats} timed calls per tracker, alternating:")
        for line in comparison_lines(comparison, width=30):
            print(line)


if __name__ == "__main__":
    main()
