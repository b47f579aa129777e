"""The assembled Siamese networks, with the state-dict layout of each family's reference checkpoints.

Every network is split into a template part that runs once per target and a search part that runs on
every frame (Contract 1 in docs/architecture.md):
- `template_embedding(crop_z, box_prior) -> [B, D]`: everything that depends only on the template,
  flattened to one float32 vector per stream;
- `search_outputs(template_embedding, crop_x) -> tuple`: the head outputs, float32, one row per stream.
Both go through the per-level feature maps (`features`), so that the template update
(`nn.template_update`) can rebuild a template from search features and reuse the search's own features:
`template_from_features(maps) -> [B, D]` (networks whose template is a feature map) and
`head_outputs(template_embedding, search_maps) -> tuple`.
Crops are BGR [B,3,S,S] with values 0..255 in the network's dtype. No per-stream state is kept on a module.

`build_network` builds the network a config names by its head kind and correlation, from the builders
registered with `register_network`: this module's depth-wise families, and in their own modules ACM
(`nn.acm_network`), its matched control (`nn.matched_xcorr`), DCFNet (`nn.dcfnet`) and SiamCAN (`nn.siamcan`).
"""

from collections.abc import Callable

import torch
from torch import Tensor, nn

from siamstream.config import TrackerConfig
from siamstream.nn.backbones import Backbone, build_backbone
from siamstream.nn.car_head import CARHead
from siamstream.nn.correlation import xcorr_depthwise
from siamstream.nn.depthwise import DepthwiseBoxLevel, MultiDepthwiseBox
from siamstream.nn.neck import Neck
from siamstream.nn.siamfc_head import SiamFCHead


def flatten_pieces(pieces: list[Tensor]) -> Tensor:
    """Equal-shaped template maps [B,C,k,k] -> one float32 embedding [B, n*C*k*k], pieces in order."""
    return torch.stack(pieces, 1).flatten(1).float()


class SiameseNetwork(nn.Module):
    """Backbone and optional neck shared by every family; each subclass adds its head.

    The template embedding holds `piece_count` maps of [piece_channels, piece_side, piece_side] per stream;
    `embedding_dim` is its length and `search_output_names` names the outputs of `search_outputs`.
    """

    search_output_names: tuple[str, ...] = ()
    # The template embedding is made of feature maps that a search region can be blended into (the
    # template update); False for templates that also depend on the box prior (ACM).
    feature_map_template: bool = True

    def __init__(
        self, backbone: Backbone, neck: Neck | None, piece_count: int, piece_channels: int, piece_side: int
    ):
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.piece_count = piece_count
        self.piece_channels = piece_channels
        self.piece_side = piece_side
        self.embedding_dim = piece_count * piece_channels * piece_side * piece_side

    def features(self, crop: Tensor) -> list[Tensor]:
        """Backbone (and neck) maps of a crop [B,3,S,S], one per level."""
        features = self.backbone(crop)
        if self.neck is not None:
            features = self.neck(features)
        return features

    def template_pieces(self, template_embedding: Tensor) -> list[Tensor]:
        """Inverse of `flatten_pieces`: [B,D] -> `piece_count` maps [B,channels,side,side]."""
        shape = [
            template_embedding.size(0),
            self.piece_count,
            self.piece_channels,
            self.piece_side,
            self.piece_side,
        ]
        return list(template_embedding.reshape(shape).unbind(1))

    def template_embedding(self, crop_z: Tensor, box_prior: Tensor) -> Tensor:
        """Embedding [B, embedding_dim] of template crops [B,3,Z,Z]; `box_prior` [B,2] is the target (w, h)
        in template-crop pixels, ignored by families without a size prior (as here, where the template is
        built from the crops' feature maps)."""
        return self.template_from_features(self.features(crop_z))

    # No return annotation: TorchScript infers each family's fixed-length tuple from `head_outputs`
    # (`tuple[Tensor, ...]` is not scriptable).
    def search_outputs(self, template_embedding: Tensor, crop_x: Tensor):
        """Head outputs for search crops [B,3,X,X], row b against row b of `template_embedding` [B,D]."""
        return self.head_outputs(template_embedding, self.features(crop_x))

    def template_from_features(self, template_features: list[Tensor]) -> Tensor:
        """Embedding [B, embedding_dim] of per-level template maps [B,C,k,k] (feature-map templates only)."""
        raise NotImplementedError

    def head_outputs(self, template_embedding: Tensor, search_features: list[Tensor]) -> tuple[Tensor, ...]:
        """`search_outputs` from the per-level search maps [B,C,H,W] instead of the crops."""
        raise NotImplementedError


class RPNNetwork(SiameseNetwork):
    """SiamRPN++ (pysot ModelBuilder: `backbone`, `neck`, `rpn_head`).

    Embedding: the `conv_kernel` output of every level and branch ([cls, loc] per level, levels in order).
    Outputs: cls [B,2A,S,S] (`[bg x A, fg x A]`), loc [B,4A,S,S] (`[dx, dy, dw, dh] x A`), as for
    SiamRPN++-ACM (`nn.acm_network`) and the matched control (`nn.matched_xcorr`).
    """

    search_output_names = ("cls", "loc")

    def __init__(
        self,
        backbone: Backbone,
        neck: Neck | None,
        rpn_head: DepthwiseBoxLevel | MultiDepthwiseBox,
        kernel_side: int,
        channels: int,
        levels: int,
    ):
        super().__init__(backbone, neck, 2 * levels, channels, kernel_side)
        self.rpn_head = rpn_head

    def template_from_features(self, template_features: list[Tensor]) -> Tensor:
        return flatten_pieces(self.rpn_head.template_kernels(template_features))

    def head_outputs(
        self, template_embedding: Tensor, search_features: list[Tensor]
    ) -> tuple[Tensor, Tensor]:
        cls, loc = self.rpn_head(self.template_pieces(template_embedding), search_features)
        return cls.float(), loc.float()


class BANNetwork(SiameseNetwork):
    """SiamBAN (siamban ModelBuilder: `backbone`, `neck`, `head`).

    Embedding: the `conv_kernel` output of every level and branch ([cls, loc] per level, levels in order).
    Outputs: cls [B,2,S,S], loc [B,4,S,S] (`l, t, r, b` in search-crop pixels, exponentiated and fused),
    as for SiamBAN-ACM (`nn.acm_network`) and the matched control (`nn.matched_xcorr`).
    """

    search_output_names = ("cls", "loc")

    def __init__(
        self,
        backbone: Backbone,
        neck: Neck,
        head: MultiDepthwiseBox,
        kernel_side: int,
        channels: int,
        levels: int,
    ):
        super().__init__(backbone, neck, 2 * levels, channels, kernel_side)
        self.head = head

    def template_from_features(self, template_features: list[Tensor]) -> Tensor:
        return flatten_pieces(self.head.template_kernels(template_features))

    def head_outputs(
        self, template_embedding: Tensor, search_features: list[Tensor]
    ) -> tuple[Tensor, Tensor]:
        cls, loc = self.head(self.template_pieces(template_embedding), search_features)
        return cls.float(), loc.float()


class CARNetwork(SiameseNetwork):
    """SiamCAR (ModelBuilder: `backbone`, `neck`, `car_head`, `down`).

    Embedding: the neck's template maps of every level. Each level is depth-wise correlated with its search
    map, the levels are concatenated and `down` (a 1x1 ConvTranspose2d) brings them back to one width.
    Outputs: cls [B,2,S,S], loc [B,4,S,S] (`l, t, r, b`, exponentiated), cen [B,1,S,S].
    """

    search_output_names = ("cls", "loc", "cen")

    def __init__(
        self,
        backbone: Backbone,
        neck: Neck,
        car_head: CARHead,
        template_side: int,
        channels: int,
        levels: int,
    ):
        super().__init__(backbone, neck, levels, channels, template_side)
        self.car_head = car_head
        self.down = nn.ConvTranspose2d(levels * channels, channels, 1, 1)

    def template_from_features(self, template_features: list[Tensor]) -> Tensor:
        return flatten_pieces(template_features)

    def head_outputs(
        self, template_embedding: Tensor, searches: list[Tensor]
    ) -> tuple[Tensor, Tensor, Tensor]:
        templates = self.template_pieces(template_embedding)
        responses = [xcorr_depthwise(searches[level], templates[level]) for level in range(len(searches))]
        cls, loc, cen = self.car_head(self.down(torch.cat(responses, 1)))
        return cls.float(), loc.float(), cen.float()


class FCNetwork(SiameseNetwork):
    """SiamFC (siamfc-pytorch Net: `backbone`, parameter-free `head`).

    Embedding: the template's backbone map. Output: response [B,1,S,S], as for SiamFC-ACM
    (`nn.acm_network`).
    """

    search_output_names = ("response",)

    def __init__(self, backbone: Backbone, head: SiamFCHead, template_side: int, channels: int):
        super().__init__(backbone, None, 1, channels, template_side)
        self.head = head

    def template_from_features(self, template_features: list[Tensor]) -> Tensor:
        return flatten_pieces(template_features)

    def head_outputs(self, template_embedding: Tensor, search_features: list[Tensor]) -> tuple[Tensor]:
        response = self.head(self.template_pieces(template_embedding)[0], search_features[0])
        return (response.float(),)


NetworkBuilder = Callable[[TrackerConfig], SiameseNetwork]
_BUILDERS: dict[tuple[str, str], NetworkBuilder] = {}


def register_network(
    head_kind: str, correlation: str = "xcorr"
) -> Callable[[NetworkBuilder], NetworkBuilder]:
    """Register the builder of the networks whose config has this `HeadConfig.kind` and `correlation`.

    Each family and correlation variant registers its builder in its own module; `siamstream.nn` imports
    them all, so `build_network` knows every built-in network once the package is imported.
    """

    def decorate(builder: NetworkBuilder) -> NetworkBuilder:
        key = (head_kind, correlation)
        if key in _BUILDERS:
            raise ValueError(f"a network of head kind {head_kind!r} with {correlation!r} is registered twice")
        _BUILDERS[key] = builder
        return builder

    return decorate


def build_network(config: TrackerConfig) -> SiameseNetwork:
    """The network of a tracker config, in eval mode, with randomly initialised weights.

    Its `state_dict()` has the keys and shapes of the tracker's reference checkpoint.
    """
    head = config.head
    builder = _BUILDERS.get((head.kind, head.correlation))
    if builder is None:
        known = ", ".join(f"{kind}/{correlation}" for kind, correlation in sorted(_BUILDERS))
        raise ValueError(
            f"{config.name}: no network of head kind {head.kind!r} with correlation {head.correlation!r}; "
            f"registered: {known}"
        )
    return builder(config).eval()


def backbone_and_neck(config: TrackerConfig) -> tuple[Backbone, Neck | None, int]:
    """The backbone and optional neck of a one-backbone network, built in that order (the order of their
    random initialisation), and the side of the template maps the head sees (7 after the ResNet-50 neck,
    6 for AlexNet). Raises ValueError when the levels of the backbone, the neck and the head disagree."""
    levels = config.head.levels
    if len(config.backbone.used_layers) != levels:
        raise ValueError(
            f"{config.name}: {len(config.backbone.used_layers)} backbone outputs for {levels} levels"
        )
    if config.neck is not None and len(config.neck.in_channels) != levels:
        raise ValueError(f"{config.name}: {len(config.neck.in_channels)} neck inputs for {levels} levels")
    backbone = build_backbone(config.backbone)
    template_side = backbone.output_side(config.crop.exemplar_size)
    neck = None
    if config.neck is not None:
        neck = Neck(config.neck.in_channels, config.neck.out_channels, config.neck.center_crop)
        template_side = neck.output_side(template_side)
    return backbone, neck, template_side


# The unpadded 3x3 `conv_kernel` of the depth-wise heads takes one pixel off each side of the template map.
KERNEL_BORDER = 2


@register_network("rpn")
def build_rpn_network(config: TrackerConfig) -> RPNNetwork:
    """SiamRPN++ (one level: pysot's AlexNet SiamRPN) with depth-wise cross-correlation."""
    head = config.head
    backbone, neck, template_side = backbone_and_neck(config)
    rpn_head: DepthwiseBoxLevel | MultiDepthwiseBox
    if head.levels == 1:
        rpn_head = DepthwiseBoxLevel(head.in_channels, 2 * head.anchor_num, 4 * head.anchor_num)
    else:
        anchors = head.anchor_num
        rpn_levels = [
            DepthwiseBoxLevel(head.in_channels, 2 * anchors, 4 * anchors) for _ in range(head.levels)
        ]
        rpn_head = MultiDepthwiseBox("rpn", rpn_levels, head.weighted)
    kernel_side = template_side - KERNEL_BORDER
    return RPNNetwork(backbone, neck, rpn_head, kernel_side, head.in_channels, head.levels)


@register_network("ban")
def build_ban_network(config: TrackerConfig) -> BANNetwork:
    """SiamBAN with depth-wise cross-correlation."""
    head = config.head
    backbone, neck, template_side = backbone_and_neck(config)
    if neck is None or head.levels == 1:
        raise ValueError(f"{config.name}: the SiamBAN head needs a neck and several levels")
    ban_levels = [DepthwiseBoxLevel(head.in_channels, 2, 4) for _ in range(head.levels)]
    ban_head = MultiDepthwiseBox("box", ban_levels, head.weighted)
    kernel_side = template_side - KERNEL_BORDER
    return BANNetwork(backbone, neck, ban_head, kernel_side, head.in_channels, head.levels)


@register_network("car")
def build_car_network(config: TrackerConfig) -> CARNetwork:
    """SiamCAR."""
    head = config.head
    backbone, neck, template_side = backbone_and_neck(config)
    if neck is None:
        raise ValueError(f"{config.name}: the SiamCAR head needs a neck")
    return CARNetwork(backbone, neck, CARHead(head.in_channels), template_side, head.in_channels, head.levels)


@register_network("siamfc")
def build_fc_network(config: TrackerConfig) -> FCNetwork:
    """SiamFC."""
    backbone, _, template_side = backbone_and_neck(config)
    return FCNetwork(backbone, SiamFCHead(config.head.out_scale), template_side, config.head.in_channels)
