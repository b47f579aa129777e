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
from typing import Any

from siamstream.registry import get_config
from siamstream.training.config import TrainingConfig, default_training_config


def laid_over(base: dict[str, Any], schedule: dict[str, Any]) -> dict[str, Any]:
    """`base` with every value that `schedule` names replaced, sections merged field by field."""
    merged = dict(base)
    for key, value in schedule.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = laid_over(base[key], value)
        else:
            merged[key] = value
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracker", required=True, help="registry name")
    parser.add_argument("--schedule", required=True, type=Path, help="JSON of TrainingConfig fields")
    args = parser.parse_args()
    tracker_default = default_training_config(get_config(args.tracker)).model_dump(mode="json")
    merged = laid_over(tracker_default, json.loads(args.schedule.read_text()))
    print(TrainingConfig.model_validate(merged).model_dump_json(indent=2))


if __name__ == "__main__":
    main()
