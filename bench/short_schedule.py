"""Print a tracker's own training config with a shared schedule laid over it.

    python bench/short_schedule.py --tracker siamcan_r50 --schedule bench/r50_short_schedule.json

The schedule file holds `TrainingConfig` fields (epochs, batch, pairs, learning rate, backbone freezing,
...); every field it does not name keeps the tracker's default, so each tracker keeps its own labels,
losses and objective while all of them train for the same pairs at the same learning rate.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from siamstream.registry import get_config
from siamstream.training.config import TrainingConfig, default_training_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracker", required=True, help="registry name")
    parser.add_argument("--schedule", required=True, type=Path, help="JSON of TrainingConfig fields")
    args = parser.parse_args()
    merged = default_training_config(get_config(args.tracker)).model_dump(mode="json")
    merged.update(json.loads(args.schedule.read_text()))
    print(TrainingConfig.model_validate(merged).model_dump_json(indent=2))


if __name__ == "__main__":
    main()
