"""Choosing sequences by name: exact names or shell-style globs (`Basketball`, `GOT-10k_Val_0000*`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from typing import TypeVar

from siamstream.data.annotations import DatasetError
from siamstream.data.sequence import TrackingSequence

Tracked = TypeVar("Tracked", bound=TrackingSequence)


def select_sequences(sequences: Iterable[Tracked], patterns: Sequence[str]) -> list[Tracked]:
    """The sequences whose name matches one of `patterns` (case-sensitive `fnmatch` globs), in dataset order.

    Raises `DatasetError` naming the patterns that match no sequence, so that a misspelt name is not
    silently left out of an evaluation.
    """
    sequences = list(sequences)
    unmatched = [p for p in patterns if not any(fnmatchcase(s.name, p) for s in sequences)]
    if unmatched:
        raise DatasetError(f"no sequence matches {', '.join(map(repr, unmatched))}")
    return [s for s in sequences if any(fnmatchcase(s.name, pattern) for pattern in patterns)]
