"""The plan of a study: what is trained, with what schedule and seeds, and what it is evaluated on.

A plan is JSON (`bench/papers_study.json`); every model rejects unknown keys. An arm is a registered
tracker, optionally with config fields replaced (an ablation switch of the network) and training fields
replaced in its recipe (an ablation of the training: label shapes, box loss); every arm trains under the
same schedule, laid over its tracker's own recipe, with the same seeds, on the same synthetic training
sequences, so arms differ only in what the paper changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from siamstream.config import TrackerConfig, merge_fields
from siamstream.registry import get_config
from siamstream.training.config import TrainingConfig, default_training_config, with_schedule

Metric = Literal["auc", "precision", "failures", "accuracy", "eao"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Arm(Strict):
    name: str = Field(pattern=r"^[a-z0-9_]+$", description="Folder and report name of the arm.")
    tracker: str = Field(description="Registered tracker the arm starts from.")
    config: dict[str, Any] = Field(
        default_factory=dict, description="TrackerConfig fields replaced (nested sections merged)."
    )
    training: dict[str, Any] = Field(
        default_factory=dict,
        description="TrainingConfig fields replaced in the tracker's own recipe (nested sections merged), "
        "e.g. {'labels': {'point_shape': 'ellipse'}}; fields the shared schedule names are not allowed.",
    )

    def tracker_config(self) -> TrackerConfig:
        base = get_config(self.tracker).model_dump(mode="json")
        return TrackerConfig.model_validate(merge_fields(base, self.config))


class Claim(Strict):
    paper: str = Field(description="Short name of the paper.")
    claim: str = Field(description="What the paper claims, in one sentence, with its own figure.")
    baseline: str = Field(description="Arm the paper compares against.")
    method: str = Field(description="Arm with the paper's method.")
    metrics: tuple[Metric, ...] = Field(description="Metrics of the claim, the first deciding the verdict.")


class Mechanism(Strict):
    paper: str = Field(description="Short name of the paper.")
    mechanism: str = Field(description="What the paper says its component does to the network's maps.")
    method: str = Field(description="Arm with the component.")
    baseline: str | None = Field(
        default=None, description="Arm without it; none when the probe compares the method's value with zero."
    )
    probe: str = Field(description="Probe metric (`siamstream.study.probes`).")
    higher_is_better: bool = Field(default=True, description="Direction the paper claims for the metric.")


class EvaluationSuite(Strict):
    per_stratum: int = Field(ge=1, description="Sequences per challenge stratum (six strata).")
    seed: int = Field(ge=0, description="Suite seed; disjoint from the training suite's sequences.")
    length: int = Field(ge=12, description="Frames per sequence.")
    width: int = Field(default=640, ge=64)
    height: int = Field(default=480, ge=64)


class StudyPlan(Strict):
    train_sequences: int = Field(ge=1, description="Synthetic training sequences (`synthetic:N`).")
    seeds: tuple[int, ...] = Field(min_length=1, description="Training seeds; every arm runs each.")
    schedule: dict[str, Any] = Field(description="TrainingConfig fields shared by every arm.")
    suite: EvaluationSuite
    arms: tuple[Arm, ...]
    claims: tuple[Claim, ...]
    mechanisms: tuple[Mechanism, ...] = ()

    @model_validator(mode="after")
    def _claims_name_arms(self) -> StudyPlan:
        names = [arm.name for arm in self.arms]
        if len(set(names)) != len(names):
            raise ValueError("arm names must be unique")
        for claim in self.claims:
            for arm in (claim.baseline, claim.method):
                if arm not in names:
                    raise ValueError(f"{claim.paper}: no arm named {arm!r}")
        for mechanism in self.mechanisms:
            for compared in (mechanism.baseline, mechanism.method):
                if compared is not None and compared not in names:
                    raise ValueError(f"{mechanism.paper}: no arm named {compared!r}")
        return self

    @model_validator(mode="after")
    def _arms_build(self) -> StudyPlan:
        """Every arm's tracker config and training config validate, and no arm changes the schedule."""
        for arm in self.arms:
            shared = sorted(set(arm.training) & set(self.schedule))
            if shared:
                raise ValueError(f"arm {arm.name}: {shared} belong to the shared schedule")
            self.training_config(arm, self.seeds[0])
        return self

    def arm(self, name: str) -> Arm:
        """The arm named `name`; ValueError naming the plan's arms when there is none."""
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise ValueError(f"no arm named {name!r}; the plan has {', '.join(a.name for a in self.arms)}")

    def training_config(self, arm: Arm, seed: int) -> TrainingConfig:
        """The arm's tracker's own recipe, with the arm's training fields and then the shared schedule laid
        over it, at `seed`."""
        own = with_schedule(default_training_config(arm.tracker_config()), arm.training)
        return with_schedule(own, {**self.schedule, "seed": seed})


def read_plan(path: Path) -> StudyPlan:
    return StudyPlan.model_validate_json(path.read_text())
