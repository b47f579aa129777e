"""Success and precision plots are written as valid PNG images with every tracker on them."""

import cv2
import numpy as np
import pytest

from siamstream.data.synthetic import SequenceSpec, generate_sequence
from siamstream.evaluation.plots import plot_norm_precision, plot_precision, plot_success
from siamstream.evaluation.runner import evaluate

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def reports():
    specs = [SequenceSpec(name=f"s{i}", width=160, height=120, length=6, seed=i) for i in range(2)]
    sequences = [generate_sequence(spec) for spec in specs]

    def drifting(sequence):
        return sequence.ground_truth + np.arange(len(sequence))[:, None] * [4.0, 0, 0, 0]

    return [
        evaluate(sequences, lambda sequence: sequence.ground_truth.copy(), "oracle", progress=False),
        evaluate(sequences, drifting, "drifting", progress=False),
    ]


@pytest.mark.parametrize("plot", [plot_success, plot_precision, plot_norm_precision])
def test_plots_are_valid_png(tmp_path, reports, plot):
    path = plot(reports, tmp_path / "plot.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = cv2.imread(str(path))
    assert image is not None and image.shape == (480, 640, 3)
    assert image.std() > 10  # something is drawn


def test_plotting_nothing_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no report"):
        plot_success([], tmp_path / "plot.png")
