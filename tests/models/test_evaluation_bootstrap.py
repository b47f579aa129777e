"""Paired bootstrap intervals: cases computed by hand and the coverage of a known effect."""

from __future__ import annotations

import numpy as np
import pytest

from siamstream.evaluation.bootstrap import paired_bootstrap


def test_a_constant_difference_has_a_zero_width_interval() -> None:
    baseline = np.arange(12.0).reshape(3, 4) / 20
    effect = paired_bootstrap(baseline + 0.05, baseline)
    assert (effect.mean, effect.low, effect.high) == pytest.approx((0.05, 0.05, 0.05))
    assert (effect.seeds, effect.sequences) == (3, 4)


def test_two_sequences_give_the_quantiles_of_their_resampled_means() -> None:
    # One seed, differences 0 and 1: resampled means are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4.
    effect = paired_bootstrap(np.array([[0.0, 1.0]]), np.zeros((1, 2)))
    assert effect.mean == pytest.approx(0.5)
    assert (effect.low, effect.high) == (0.0, 1.0)


def test_seeds_are_resampled_too() -> None:
    # Every sequence agrees within a seed, the seeds disagree: +1, -1, 0. Resampling only sequences would
    # give a zero-width interval at 0; with seeds resampled, all -1 (or all +1) has probability 1/27 > 2.5%.
    difference = np.repeat([[1.0], [-1.0], [0.0]], 10, axis=1)
    effect = paired_bootstrap(difference, np.zeros_like(difference))
    assert effect.mean == pytest.approx(0.0)
    assert (effect.low, effect.high) == pytest.approx((-1.0, 1.0))


def test_the_interval_covers_a_known_mean_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(11)
    trials, covered = 200, 0
    for trial in range(trials):
        baseline = rng.normal(0.5, 0.1, size=(3, 40))
        method = baseline + rng.normal(0.02, 0.05, size=(3, 40))  # true effect +0.02
        effect = paired_bootstrap(method, baseline, resamples=1000, seed=trial)
        covered += effect.low <= 0.02 <= effect.high
    # Binomial(200, 0.95) lies in [0.90, 0.99] with probability > 0.998; percentile intervals run a little
    # narrow at 3 seeds, hence the lower bound below the nominal 0.95.
    assert 0.88 <= covered / trials <= 0.995


def test_shapes_and_values_are_checked() -> None:
    with pytest.raises(ValueError, match="equal"):
        paired_bootstrap(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="finite"):
        paired_bootstrap(np.array([[np.nan]]), np.zeros((1, 1)))
