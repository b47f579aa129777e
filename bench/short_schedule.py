"""Print a tracker's own training config with a shared schedule laid over it.

    python bench/short_schedule.py --tracker siamcan_r50 --schedule bench/r50_short_schedule.json

The schedule file holds `TrainingConfig` fields (epochs, batch, pairs, learning rate, backbone freezing,
...), nested as in the config; every field it does not name, at any depth, keeps the tracker's own value,
so each tracker keeps its labels, losses, objective and augmentation kinds while all of them train for
the same pairs at the same learning rate.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from siamstream.registry import get_config
from siamstream.training.config import default_training_config, with_schedule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracker", required=True, help="registry name")
    parser.add_argument("--schedule", required=True, type=Path, help="JSON of TrainingConfig fields")
    args = parser.parse_args()
    tracker_default = default_training_config(get_config(args.tracker))
    print(with_schedule(tracker_default, json.loads(args.schedule.read_text())).model_dump_json(indent=2))


if __name__ == "__main__":
    main()
