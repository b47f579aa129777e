"""Success and precision plots of OPE as PNG files, several trackers per plot, pysot style.

Figures are built with matplotlib's object API (no pyplot state) and rendered by the Agg canvas, so
plotting works headless and from any thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from siamstream.evaluation.metrics import (
    NORM_PRECISION_REPORTED_AT,
    NORM_PRECISION_THRESHOLDS,
    PRECISION_REPORTED_AT,
    PRECISION_THRESHOLDS,
    SUCCESS_THRESHOLDS,
)
from siamstream.evaluation.report import Curve, EvaluationReport


def _plot(
    reports: Sequence[EvaluationReport],
    curve: Curve,
    thresholds: np.ndarray,
    path: str | Path,
    title: str,
    xlabel: str,
    ylabel: str,
) -> Path:
    reports = [report for report in reports if report.sequences]  # all-unscored reports have no curve
    if not reports:
        raise ValueError("no report to plot")
    # Legend in pysot's order: best tracker first, its score in brackets.
    ranked = sorted(reports, key=lambda report: -report.score(curve))
    figure = Figure(figsize=(6.4, 4.8), dpi=100)
    axes = figure.add_subplot()
    for report in ranked:
        label = f"{report.tracker} [{report.score(curve):.3f}]"
        axes.plot(thresholds, report.mean_curve(curve), linewidth=2, label=label)
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel, xlim=(thresholds[0], thresholds[-1]), ylim=(0, 1.02))
    axes.grid(True, linestyle=":")
    axes.legend(loc="lower left" if curve == "success" else "lower right")
    path = Path(path)
    figure.savefig(path, format="png")
    return path


def plot_success(
    reports: Sequence[EvaluationReport], path: str | Path, title: str = "Success plots of OPE"
) -> Path:
    """Success rate against IoU threshold; the legend gives each tracker's AUC."""
    return _plot(reports, "success", SUCCESS_THRESHOLDS, path, title, "Overlap threshold", "Success rate")


def plot_precision(
    reports: Sequence[EvaluationReport], path: str | Path, title: str = "Precision plots of OPE"
) -> Path:
    """Precision against centre-error threshold in pixels; the legend gives precision at 20 px."""
    xlabel = f"Location error threshold (px); legend at {PRECISION_REPORTED_AT:g} px"
    return _plot(reports, "precision", PRECISION_THRESHOLDS, path, title, xlabel, "Precision")


def plot_norm_precision(
    reports: Sequence[EvaluationReport], path: str | Path, title: str = "Normalized precision plots of OPE"
) -> Path:
    """Precision against normalised centre-error threshold; the legend gives the value at 0.2."""
    xlabel = f"Normalized location error threshold; legend at {NORM_PRECISION_REPORTED_AT:g}"
    return _plot(reports, "norm_precision", NORM_PRECISION_THRESHOLDS, path, title, xlabel, "Precision")
