"""A shared schedule laid over each tracker's own training recipe."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from siamstream.registry import get_config
from siamstream.training import default_training_config, with_schedule


def test_a_schedule_replaces_the_fields_it_names_and_keeps_the_rest() -> None:
    own = default_training_config(get_config("siamcan_r50"))
    shared = with_schedule(
        own, {"epochs": 3, "lr": {"warmup_epochs": 0, "base_lr": 0.02}, "pairs": {"search": {"shift": 16}}}
    )
    assert (shared.epochs, shared.lr.base_lr, shared.pairs.search.shift) == (3, 0.02, 16)
    # Everything else is SiamCAN's own: its box loss, its labels, the rest of its lr and augmentation.
    assert shared.loss == own.loss and shared.labels == own.labels
    assert shared.lr.end_lr == own.lr.end_lr and shared.pairs.search.scale == own.pairs.search.scale
    assert shared.objective == own.objective


def test_a_schedule_with_an_unknown_field_is_refused() -> None:
    with pytest.raises(ValidationError, match="bogus"):
        with_schedule(default_training_config(get_config("siamrpnpp_r50")), {"lr": {"bogus": 1}})
