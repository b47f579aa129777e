"""Typed configuration of a named tracker.

One `TrackerConfig` says everything needed to rebuild a tracker: the network (backbone, neck, head), the
crop geometry, the post-processing hyperparameters of its family, how its score maps to a status, and
where its weights come from. Every model is frozen and rejects unknown keys, so a config read back from a
tracker package is exactly the one it was exported with.

Conventions used throughout the library:
- images and crops are BGR uint8 (HxWx3 for frames, Nx3xSxS for crops), values 0..255, no normalisation;
- boxes are `xywh` in image pixels (top-left corner, width, height) unless a name says `cxcywh`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def merge_fields(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` (a dumped config) with every field `changes` names replaced, nested sections merged field by
    field: what `changes` does not name, at any depth, keeps its value."""
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = merge_fields(base[key], value)
        else:
            merged[key] = value
    return merged


class Family(StrEnum):
    """Post-processing family: decides how head outputs become a box."""

    SIAMRPN = "siamrpn"
    SIAMBAN = "siamban"
    SIAMCAR = "siamcar"
    SIAMFC = "siamfc"


class Precision(StrEnum):
    """Numeric precision a tracker package runs its networks in."""

    FP32 = "fp32"
    BF16 = "bf16"  # CPU (oneDNN/AMX) and CUDA
    FP16 = "fp16"  # CUDA only


BackboneKind = Literal[
    "resnet50_atrous",
    "mobilenetv2",
    "alexnet_legacy",
    "alexnet_siamfc",
    "dcfnet_resnet50",
    # DCFNet's stage geometry in a few thin convolutions, for training from scratch on a CPU; "_fused"
    # adds DCFNet's two correlation-fusions (`nn.small_staged`).
    "small_staged",
    "small_staged_fused",
]


class BackboneConfig(Strict):
    kind: BackboneKind = Field(
        description="Backbone architecture; each has the state-dict key layout of its reference checkpoints."
    )
    used_layers: tuple[int, ...] = Field(description="Indices of the backbone stages whose outputs are used.")
    width_mult: float = Field(default=1.0, description="Channel multiplier (1.4 for pysot's MobileNetV2).")


class NeckConfig(Strict):
    in_channels: tuple[int, ...] = Field(description="Channels of each used backbone output.")
    out_channels: int = Field(default=256, description="Channels after the 1x1 adjust convolution.")
    center_crop: int = Field(
        default=7, description="Template maps narrower than 20 are cropped to this centre size (pysot)."
    )


class HeadConfig(Strict):
    kind: Literal["rpn", "ban", "car", "siamfc", "dcf", "can"] = Field(description="Head architecture.")
    in_channels: int = Field(default=256, description="Channels of each correlated level.")
    levels: int = Field(default=1, description="Number of feature levels fused by the head.")
    weighted: bool = Field(
        default=False, description="Fuse levels by softmax-normalised learned weights instead of a mean."
    )
    anchor_num: int = Field(default=5, description="Anchors per position (RPN only).")
    out_scale: float = Field(default=0.001, description="Response scale of the SiamFC cross-correlation.")
    margin_supervision: bool = Field(
        default=False,
        description="Train with SiamMargin's margin loss on the correlation map (training only).",
    )
    correlation: Literal["xcorr", "acm", "xcorr_matched"] = Field(
        default="xcorr",
        description="How template and search features meet: the family's (depth-wise) cross-correlation, "
        "the learned asymmetric convolution module with the box-size prior (ACM, CVPR 2021), or, for the "
        "SiamRPN++/SiamBAN heads, ACM's control: depth-wise cross-correlation followed by learnable layers "
        "with as many parameters as ACM's (`nn.matched_xcorr`), which tells ACM's gain from its size.",
    )
    acm_box_prior: bool = Field(
        default=True,
        description="ACM: add the embedded box size (w, h) to the template term (ACM, CVPR 2021, with and "
        "without the bounding-box prior). Off, the template vector is the template term alone and the "
        "prior's MLP (`xorr_bbox`) is not built.",
    )
    channel_attention_kernel: int = Field(
        default=5,
        ge=1,
        description="SiamCAN: odd size k of the 1-D convolution of the cross-channel attention. The paper "
        "does not print k; 5 is ECA-Net's adaptive rule |(log2(C) + 1) / 2|_odd for C = 256 channels.",
    )
    spatial_attention_kernel: int = Field(
        default=7, ge=1, description="SiamCAN: odd side of the self-spatial attention convolution (CBAM's 7)."
    )
    channel_attention: bool = Field(
        default=True,
        description="SiamCAN: weight the search channels by the template's cross-channel attention (paper "
        "002, Table 4: '+ cross-attention'). Off, the search maps go to the correlation unweighted and the "
        "template embedding holds no channel weights.",
    )
    spatial_attention: bool = Field(
        default=True,
        description="SiamCAN: self-spatial attention on each correlation map (paper 002, Table 4: '+ "
        "spatial-attention'). Off, the correlation maps go to the 1x1 convolutions as they are.",
    )
    fusion_stages: tuple[int, ...] = Field(
        default=(1, 2),
        description="DCFNet: backbone stages followed by a correlation-fusion (paper 001, Table III: () "
        "'Baseline', (1,) 'CF-1st' after the first three conv layers, (2,) 'CF-2nd' after block 3, (1, 2) "
        "'CF-double', the paper's model). A stage without fusion has no `fusionN` module and its template "
        "map is not kept in the template embedding.",
    )

    @model_validator(mode="after")
    def _ablation_switches_fit_the_head(self) -> HeadConfig:
        if self.fusion_stages not in ((), (1,), (2,), (1, 2)):
            raise ValueError(f"fusion_stages: DCFNet stages 1 and/or 2 in order, not {self.fusion_stages}")
        # A switch the head does not read would make an ablation arm silently equal to its baseline.
        if self.fusion_stages != (1, 2) and self.kind != "dcf":
            raise ValueError("fusion_stages is a DCFNet switch (head kind 'dcf')")
        if not (self.channel_attention and self.spatial_attention) and self.kind != "can":
            raise ValueError("channel_attention and spatial_attention are SiamCAN switches (head kind 'can')")
        if not self.acm_box_prior and self.correlation != "acm":
            raise ValueError("acm_box_prior switches the prior of ACM (correlation 'acm')")
        if self.correlation == "xcorr_matched" and self.kind not in ("rpn", "ban"):
            raise ValueError("the matched-parameter correlation is ACM's control for the rpn and ban heads")
        return self


class AnchorConfig(Strict):
    stride: int = Field(default=8, description="Anchor spacing in search-crop pixels.")
    ratios: tuple[float, ...] = Field(default=(0.33, 0.5, 1.0, 2.0, 3.0), description="Anchor h/w ratios.")
    scales: tuple[float, ...] = Field(default=(8.0,), description="Anchor scales (side = stride * scale).")


class CropConfig(Strict):
    exemplar_size: int = Field(default=127, description="Template crop side in pixels.")
    instance_size: int = Field(default=255, description="Search crop side in pixels (287 for AlexNet RPN).")
    context_amount: float = Field(default=0.5, description="Context added around the box: w + a*(w+h).")
    base_size: int = Field(
        default=8, description="Score-map size offset: score = (instance-exemplar)//stride + 1 + base."
    )
    stride: int = Field(default=8, description="Total network stride in crop pixels.")

    @property
    def score_size(self) -> int:
        return (self.instance_size - self.exemplar_size) // self.stride + 1 + self.base_size


class FamilyHyper(Strict):
    """Base of each family's post-processing hyperparameters: what the config's own rules ask of a family.

    The family's behaviour is its post-processor (`siamstream.tracking.post_processing`); these are the
    facts the config is validated against, before any tracking code is imported.
    """

    # The family searches a pyramid of crops per frame, their sides scaled from a search side kept in the
    # track's state (SiamFC), rather than one crop whose side the config decides.
    scale_pyramid: ClassVar[bool] = False

    def fast_motion_side(self) -> int | None:
        """The search crop side (crop px) the tracker switches to for good after a large move
        (SiamBAN-ACM), or None when its search region never switches."""
        return None


class RPNHyper(FamilyHyper):
    """SiamRPN++ and SiamBAN post-processing (pysot `SiamRPNTracker` / `SiamBANTracker`)."""

    family: Literal[Family.SIAMRPN, Family.SIAMBAN]
    penalty_k: float = Field(description="Strength of the scale/aspect change penalty.")
    window_influence: float = Field(description="Weight of the cosine window in the final score.")
    lr: float = Field(description="Size smoothing rate, scaled by the penalised score of the best match.")
    min_size: float = Field(default=10.0, description="Smallest width/height in image pixels after clipping.")
    anchors: AnchorConfig | None = Field(default=None, description="Anchors (SiamRPN only).")
    fast_motion_instance_size: int | None = Field(
        default=None,
        gt=0,
        description="SiamBAN-ACM: search crop side used for good once the target moved, within one frame, "
        "more than half the context size right or down (510, score map 56); None never switches.",
    )

    def fast_motion_side(self) -> int | None:
        return self.fast_motion_instance_size


class CARHyper(FamilyHyper):
    """SiamCAR post-processing: upsampled maps, coarse windowed argmax then fine unwindowed argmax."""

    family: Literal[Family.SIAMCAR]
    penalty_k: float = Field(description="Strength of the scale/aspect change penalty.")
    window_influence: float = Field(description="Weight of the cosine window (SiamCAR's `window_lr`).")
    lr: float = Field(description="Size smoothing rate.")
    hanming: bool = Field(default=True, description="Apply the cosine window at all.")
    region_s: float = Field(default=0.1, description="Smallest half-region of the fine search, x exemplar.")
    region_l: float = Field(default=0.44, description="Largest half-region of the fine search, x exemplar.")


class FCHyper(FamilyHyper):
    """SiamFC post-processing: scale pyramid, upsampled response, scale penalty and damping."""

    scale_pyramid: ClassVar[bool] = True

    family: Literal[Family.SIAMFC]
    scale_num: int = Field(default=3, description="Number of search scales.")
    scale_step: float = Field(default=1.0375, description="Ratio between neighbouring scales.")
    scale_penalty: float = Field(default=0.9745, description="Response factor for scales other than 1.")
    scale_lr: float = Field(default=0.59, description="Damping of the scale update.")
    window_influence: float = Field(default=0.176, description="Weight of the cosine window.")
    response_up: int = Field(default=16, description="Bicubic upsampling factor of the response.")


Hyper = Annotated[RPNHyper | CARHyper | FCHyper, Field(discriminator="family")]


class StatusConfig(Strict):
    """How a frame's score becomes TRACKING / UNCERTAIN / LOST.

    A frame scoring at least `tracking_above` is TRACKING. Below it the frame is UNCERTAIN, and after
    `lost_after` consecutive frames below `lost_below` the track is LOST until a frame scores at least
    `tracking_above` again. The box keeps being produced in every status.
    """

    tracking_above: float = Field(default=0.6, ge=0.0, le=1.0, description="Score of a confident frame.")
    lost_below: float = Field(default=0.3, ge=0.0, le=1.0, description="Score of a failed frame.")
    lost_after: int = Field(default=5, ge=1, description="Consecutive failed frames before LOST.")

    @model_validator(mode="after")
    def _lost_at_most_tracking(self) -> StatusConfig:
        if self.lost_below > self.tracking_above:
            raise ValueError(
                f"status.lost_below {self.lost_below} must be at most status.tracking_above "
                f"{self.tracking_above}: a score between them would count as failed on a TRACKING frame"
            )
        return self


class TemplateUpdateConfig(Strict):
    """Confidence-gated moving average of the template (SiamMargin)."""

    enabled: bool = Field(default=False, description="Blend the template with the current target's.")
    rate: float = Field(default=0.0102, ge=0.0, le=1.0, description="Moving-average rate per update.")
    gate: float = Field(default=0.9, ge=0.0, le=1.0, description="Update only when the score reaches this.")


class SearchConfig(Strict):
    """SiamMargin's "one more search" and "adaptive search region" (defined in `tracking.search_options`).

    Both are tracking options, off by default; they need a single-crop family (siamrpn, siamban,
    siamcar) without a search-region rule of its own (SiamBAN-ACM's fast-motion crop). The thresholds
    compare the frame's score (the foreground probability of the chosen candidate).
    """

    one_more_search: bool = Field(
        default=False,
        description="Search the frame again centred on the first search's target when it scored low, and "
        "keep the better-scoring of the two.",
    )
    second_search_below: float = Field(
        default=0.85,
        ge=0.0,
        le=1.0,
        # pysot's long-term SiamRPN++ calls a frame below 0.85 unconfident (TRACK.CONFIDENCE_LOW).
        description="Search again when the first search scored below this.",
    )
    adaptive_region: bool = Field(
        default=False,
        description="Grow the search crop (and its score map) while frames score low; back to the normal "
        "crop on a confident frame.",
    )
    region_step: int = Field(
        default=64,
        gt=0,
        # 64 = 8 cells of stride 8: the score map grows by 8 cells a step (25 -> 33 -> 41 -> 49 for a 255
        # crop), the reach of its outer cells by a quarter of the normal crop's side.
        description="Crop pixels the search side grows by per low-scoring frame; a multiple of the stride.",
    )
    region_max_steps: int = Field(
        default=3,
        ge=1,
        # 3 steps: 447 for a 255 crop, about 3x its pixels, so the worst frame of a real-time tracker stays
        # within a bounded cost (pysot's long-term 831 crop is 10.6x, for re-detection).
        description="Steps the search side grows at most.",
    )
    grow_below: float = Field(
        default=0.85, ge=0.0, le=1.0, description="A frame scoring below this grows the crop one step."
    )
    normal_at: float = Field(
        default=0.95,
        ge=0.0,
        le=1.0,
        description="A frame scoring at least this returns to the normal crop; between the two thresholds "
        "the side is kept (hysteresis, as pysot's long-term tracker).",
    )

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> SearchConfig:
        if self.grow_below > self.normal_at:
            raise ValueError(f"grow_below {self.grow_below} must be at most normal_at {self.normal_at}")
        return self


class LongTermConfig(Strict):
    """Re-detection of a LOST target over a larger region (defined in `tracking.long_term`).

    Off by default. While the track is LOST, each frame is searched in crops of `lost_instance_size` at
    the target's normal scale, around the last position when one such crop reaches the whole frame, else
    over a grid of tiles covering the frame, `tiles_per_frame` of them per frame in turn. A detection is
    taken only when it scores at least the status's `tracking_above` (which also ends LOST); below it the
    target is held where it was lost.
    """

    enabled: bool = Field(default=False, description="Search a larger region while the track is LOST.")
    lost_instance_size: int = Field(
        default=831,
        gt=0,
        # pysot's long-term SiamRPN++ (TRACK.LOST_INSTANCE_SIZE): a 63-cell score map for its 255 crop.
        description="Side (crop px) of the search crops while LOST; larger than the instance size.",
    )
    window_influence: float = Field(
        default=0.001,
        ge=0.0,
        le=1.0,
        # pysot's long-term tracker: while lost the motion prior is meaningless, the window all but off.
        description="Weight of the cosine window while LOST, in place of the family's.",
    )
    tiles_per_frame: int = Field(
        default=1,
        ge=1,
        # One crop of 831 costs about 10x a normal 255 crop, and a frame's tiles go to the network in one
        # call, which the service gives up on after 5 s (`inference_timeout_s`): one a frame keeps a LOST
        # frame's cost bounded whatever the frame size, at the price of covering a large frame over several
        # frames. A ResNet-50 tracker on CPU (about 0.3 s a normal frame) takes about 3 s for one tile, so
        # more than one needs an accelerator; 4 (about 40 normal crops) is as far as one should be asked.
        le=4,
        description="Lost-search crops run per frame, in one inference call; a frame needing more tiles is "
        "covered in turn. Each costs about (lost_instance_size / instance_size)^2 normal searches (about 10 "
        "at 831 for 255): the service's inference timeout (5 s) allows one for a ResNet-50 tracker on CPU.",
    )


class WeightsSource(Strict):
    origin: str = Field(description="Where published weights come from (project and file name).")
    licence: str = Field(
        description="Licences of the reference code and of the weights; for published weights, the model "
        "zoo's (`siamstream.zoo`)."
    )


class TrackerConfig(Strict):
    name: str = Field(description="Registry name.")
    description: str = Field(default="", description="One line for `siamstream models`.")
    backbone: BackboneConfig
    neck: NeckConfig | None = Field(default=None, description="Adjust layer; None for SiamFC/AlexNet RPN.")
    head: HeadConfig
    crop: CropConfig = Field(default_factory=CropConfig)
    hyper: Hyper
    status: StatusConfig = Field(default_factory=StatusConfig)
    template_update: TemplateUpdateConfig = Field(default_factory=TemplateUpdateConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    long_term: LongTermConfig = Field(default_factory=LongTermConfig)
    weights: WeightsSource
    input_format: Literal["bgr_0_255"] = Field(
        default="bgr_0_255", description="Crop convention: BGR, 0..255, no mean/std (pysot)."
    )

    @property
    def family(self) -> Family:
        return Family(self.hyper.family)

    @model_serializer(mode="wrap")
    def _without_default_long_term(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A tracker without long-term mode dumps the config it dumped before the section existed: the
        # previous release's TrackerConfig refuses unknown keys, so its replicas and `siamstream export`
        # still read the packages and checkpoints written here, whose config is the one it wrote itself.
        dumped = handler(self)
        if self.long_term == LongTermConfig():
            dumped.pop("long_term", None)
        return dumped

    @model_validator(mode="after")
    def _anchors_for_rpn(self) -> TrackerConfig:
        if self.head.kind == "rpn" and getattr(self.hyper, "anchors", None) is None:
            raise ValueError("an RPN head needs hyper.anchors")
        return self

    @model_validator(mode="after")
    def _template_update_needs_a_feature_map(self) -> TrackerConfig:
        # The ACM template is a vector per level and branch, not a map a search region can be blended into.
        if self.template_update.enabled and self.head.correlation == "acm":
            raise ValueError("the template update needs a feature-map template; ACM templates are vectors")
        return self

    @model_validator(mode="after")
    def _search_options_fit_the_tracker(self) -> TrackerConfig:
        search = self.search
        if not (search.one_more_search or search.adaptive_region):
            return self
        if self.hyper.scale_pyramid:
            # Its scale pyramid already searches three crops whose side is its own state (`search_size`).
            raise ValueError("one_more_search and adaptive_region need a single-crop family, not SiamFC")
        if self.hyper.fast_motion_side() is not None:
            raise ValueError(
                "one_more_search and adaptive_region would change the search region that SiamBAN-ACM's own "
                "fast-motion rule (hyper.fast_motion_instance_size) decides"
            )
        if search.adaptive_region and search.region_step % self.crop.stride:
            raise ValueError(
                f"search.region_step {search.region_step} must be a multiple of the stride {self.crop.stride}"
            )
        return self

    @model_validator(mode="after")
    def _long_term_fits_the_tracker(self) -> TrackerConfig:
        long_term = self.long_term
        if not long_term.enabled:
            return self
        if self.hyper.fast_motion_side() is not None:
            raise ValueError(
                "long_term would change the search region that SiamBAN-ACM's own fast-motion rule "
                "(hyper.fast_motion_instance_size) decides"
            )
        side = long_term.lost_instance_size
        if side <= self.crop.instance_size:
            raise ValueError(
                f"long_term.lost_instance_size {side} must exceed the instance size {self.crop.instance_size}"
            )
        if (side - self.crop.instance_size) % self.crop.stride:
            raise ValueError(
                f"long_term.lost_instance_size {side} must differ from the instance size "
                f"{self.crop.instance_size} by a multiple of the stride {self.crop.stride}"
            )
        return self
