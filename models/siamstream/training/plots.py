"""Loss curves of a run, drawn from its metrics CSV."""

from __future__ import annotations

import csv
from pathlib import Path

from matplotlib.figure import Figure

_NOT_LOSSES = {"epoch", "step", "lr", "pairs_per_s"}


def plot_loss_curves(metrics_csv: Path, png: Path) -> None:
    """One line per loss column against the step, plus the lr on a second axis, saved as PNG."""
    with metrics_csv.open() as stream:
        rows = list(csv.DictReader(stream))
    if not rows:
        return
    steps = [int(row["step"]) for row in rows]
    figure = Figure(figsize=(8, 4.5))
    axis = figure.add_subplot()
    for column in rows[0]:
        if column not in _NOT_LOSSES:
            axis.plot(steps, [float(row[column]) for row in rows], label=column, linewidth=1)
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.legend(loc="upper right")
    lr_axis = axis.twinx()
    lr_axis.plot(steps, [float(row["lr"]) for row in rows], color="grey", linestyle=":", label="lr")
    lr_axis.set_ylabel("learning rate")
    figure.tight_layout()
    figure.savefig(png, dpi=100)
