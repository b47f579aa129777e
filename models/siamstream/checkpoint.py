"""Reading checkpoints: the published pysot-family weight files and our own training checkpoints.

Published files are bare state dicts; training snapshots are `{'epoch', 'state_dict', 'optimizer'}` saved
from a DataParallel model (keys prefixed `module.`). Both are accepted. Keys and shapes are checked strictly
against the network built from the registry, and every mismatch is listed in one error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from siamstream.config import TrackerConfig
from siamstream.nn.network import build_network
from siamstream.registry import get_config, list_trackers

# pysot snapshots nest the weights under one of these keys.
_WRAPPER_KEYS = ("state_dict", "model", "net")
# BatchNorm counters are absent from some released files and carry no weights.
_OPTIONAL_SUFFIX = "num_batches_tracked"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the tracker's network."""


@dataclass(frozen=True)
class Checkpoint:
    """A state dict read from a file, with what was found around it."""

    state_dict: dict[str, torch.Tensor]
    sha256: str
    tracker: str | None  # recorded by our own training checkpoints
    config: dict[str, Any] | None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_checkpoint(path: Path) -> Checkpoint:
    """Read a bare or wrapped state dict, with or without a `module.` prefix."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"checkpoint {path} is not a readable PyTorch file: {error}") from error
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"checkpoint {path} holds a {type(raw).__name__}, not a state dict")
    tracker = raw.get("tracker") if isinstance(raw.get("tracker"), str) else None
    config = raw.get("config") if isinstance(raw.get("config"), Mapping) else None
    weights: Mapping[str, Any] = raw
    for key in _WRAPPER_KEYS:
        if isinstance(raw.get(key), Mapping):
            weights = raw[key]
            break
    state_dict = {_strip_module(key): value for key, value in weights.items()}
    not_tensors = sorted(key for key, value in state_dict.items() if not isinstance(value, torch.Tensor))
    if not_tensors:
        raise CheckpointError(f"checkpoint {path} has entries that are not tensors: {_listing(not_tensors)}")
    return Checkpoint(
        state_dict=state_dict,
        sha256=file_sha256(path),
        tracker=tracker,
        config=dict(config) if config else None,
    )


def recorded_config(checkpoint: Checkpoint, path: Path) -> TrackerConfig:
    """The tracker config a SiamStream training checkpoint (read from `path`) records; CheckpointError for
    published weights, which record none."""
    if checkpoint.config is None:
        raise CheckpointError(
            f"{path} records no tracker config: it is not a SiamStream training checkpoint (published "
            "weights go through import-checkpoint)"
        )
    return TrackerConfig.model_validate(checkpoint.config)


def load_weights(network: nn.Module, state_dict: Mapping[str, torch.Tensor], tracker: str) -> None:
    """Load weights into `network` after a strict check of keys and shapes.

    Raises CheckpointError listing missing, unexpected and mis-shaped keys. A missing
    `num_batches_tracked` is not an error (it holds no weights).
    """
    expected = network.state_dict()
    problems = layout_problems(expected, state_dict)
    if problems:
        raise CheckpointError(f"weights do not fit tracker {tracker!r}: " + "; ".join(problems))
    complete = dict(expected)
    complete.update(state_dict)
    network.load_state_dict(complete, strict=True)


def layout_problems(
    expected: Mapping[str, torch.Tensor], state_dict: Mapping[str, torch.Tensor]
) -> list[str]:
    """How `state_dict` departs from the key layout `expected` (a network's state dict): its missing,
    unexpected and mis-shaped keys, one line per kind; empty when it fits."""
    missing = sorted(key for key in expected if key not in state_dict and not key.endswith(_OPTIONAL_SUFFIX))
    unexpected = sorted(key for key in state_dict if key not in expected)
    misshaped = sorted(
        f"{key} (file {tuple(value.shape)}, model {tuple(expected[key].shape)})"
        for key, value in state_dict.items()
        if key in expected and value.shape != expected[key].shape
    )
    return [
        f"{label} ({len(keys)}): {_listing(keys)}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped))
        if keys
    ]


def trackers_fitting(state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """The registered trackers whose network has exactly the key layout of `state_dict`, sorted.

    Each network is built on the meta device: shapes without memory or initialisation, so checking all
    registered trackers takes about a second.
    """
    fitting = []
    for name in list_trackers():
        with torch.device("meta"):
            network = build_network(get_config(name))
        if not layout_problems(network.state_dict(), state_dict):
            fitting.append(name)
    return fitting


def _strip_module(key: str) -> str:
    return key.removeprefix("module.")


def _listing(keys: list[str], shown: int = 12) -> str:
    more = f", ... and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more
