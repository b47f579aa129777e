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
"""

import torch
from torch import Tensor, nn

from siamstream.config import TrackerConfig
from siamstream.nn.acm import AsymmetricCorrelation, MultiACM
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
        return template_embedding.reshape(shape).unbind(1)

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
    Outputs: cls [B,2A,S,S] (`[bg x A, fg x A]`), loc [B,4A,S,S] (`[dx, dy, dw, dh] x A`).
    SiamRPN++-ACM (`nn.acm_network`) reuses it with a `MultiACM` head and its own embedding.
    """

    search_output_names = ("cls", "loc")

    def __init__(
        self,
        backbone: Backbone,
        neck: Neck | None,
        rpn_head: DepthwiseBoxLevel | MultiDepthwiseBox | MultiACM,
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
    Outputs: cls [B,2,S,S], loc [B,4,S,S] (`l, t, r, b` in search-crop pixels, exponentiated and fused).
    SiamBAN-ACM (`nn.acm_network`) reuses it with a `MultiACM` head and its own embedding.
    """

    search_output_names = ("cls", "loc")

    def __init__(
        self,
        backbone: Backbone,
        neck: Neck,
        head: MultiDepthwiseBox | MultiACM,
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

    Embedding: the template's backbone map. Output: response [B,1,S,S].
    SiamFC-ACM (`nn.acm_network`) reuses it with an `AsymmetricCorrelation` head and its own embedding.
    """

    search_output_names = ("response",)

    def __init__(
        self, backbone: Backbone, head: SiamFCHead | AsymmetricCorrelation, template_side: int, channels: int
    ):
        super().__init__(backbone, None, 1, channels, template_side)
        self.head = head

    def template_from_features(self, template_features: list[Tensor]) -> Tensor:
        return flatten_pieces(template_features)

    def head_outputs(self, template_embedding: Tensor, search_features: list[Tensor]) -> tuple[Tensor]:
        response = self.head(self.template_pieces(template_embedding)[0], search_features[0])
        return (response.float(),)


def _check_levels(config: TrackerConfig) -> None:
    levels = config.head.levels
    if len(config.backbone.used_layers) != levels:
        raise ValueError(
            f"{config.name}: {len(config.backbone.used_layers)} backbone outputs for {levels} levels"
        )
    if config.neck is not None and len(config.neck.in_channels) != levels:
        raise ValueError(f"{config.name}: {len(config.neck.in_channels)} neck inputs for {levels} levels")


def build_network(config: TrackerConfig) -> SiameseNetwork:
    """The network of a tracker config, in eval mode, with randomly initialised weights.

    Its `state_dict()` has the keys and shapes of the tracker's reference checkpoint.
    """
    # Imported here: DCFNet and SiamCAN subclass `SiameseNetwork` from this module.
    if config.head.kind == "dcf":
        from siamstream.nn.dcfnet import build_dcfnet

        return build_dcfnet(config)
    if config.head.kind == "can":
        from siamstream.nn.siamcan import build_siamcan

        return build_siamcan(config)
    _check_levels(config)
    head = config.head
    backbone = build_backbone(config.backbone)
    template_side = backbone.output_side(config.crop.exemplar_size)
    neck = None
    if config.neck is not None:
        neck = Neck(config.neck.in_channels, config.neck.out_channels, config.neck.center_crop)
        template_side = neck.output_side(template_side)
    kernel_side = template_side - 2  # the unpadded 3x3 `conv_kernel` of the depth-wise heads
    if head.correlation == "acm":
        # Imported here: the ACM networks subclass the family networks of this module.
        from siamstream.nn.acm_network import build_acm_network

        return build_acm_network(config, backbone, neck, template_side).eval()
    if head.correlation == "xcorr_matched":
        # Imported here: the matched control builds the family networks of this module.
        from siamstream.nn.matched_xcorr import build_matched_network

        return build_matched_network(config, backbone, neck, kernel_side).eval()
    network: SiameseNetwork
    if head.kind == "rpn":
        if head.levels == 1:
            rpn_head = DepthwiseBoxLevel(head.in_channels, 2 * head.anchor_num, 4 * head.anchor_num)
        else:
            anchors = head.anchor_num
            rpn_levels = [
                DepthwiseBoxLevel(head.in_channels, 2 * anchors, 4 * anchors) for _ in range(head.levels)
            ]
            rpn_head = MultiDepthwiseBox("rpn", rpn_levels, head.weighted)
        network = RPNNetwork(backbone, neck, rpn_head, kernel_side, head.in_channels, head.levels)
    elif head.kind == "ban":
        if neck is None or head.levels == 1:
            raise ValueError(f"{config.name}: the SiamBAN head needs a neck and several levels")
        ban_levels = [DepthwiseBoxLevel(head.in_channels, 2, 4) for _ in range(head.levels)]
        ban_head = MultiDepthwiseBox("box", ban_levels, head.weighted)
        network = BANNetwork(backbone, neck, ban_head, kernel_side, head.in_channels, head.levels)
    elif head.kind == "car":
        if neck is None:
            raise ValueError(f"{config.name}: the SiamCAR head needs a neck")
        network = CARNetwork(
            backbone, neck, CARHead(head.in_channels), template_side, head.in_channels, head.levels
        )
    elif head.kind == "siamfc":
        network = FCNetwork(backbone, SiamFCHead(head.out_scale), template_side, head.in_channels)
    else:
        raise ValueError(f"{config.name}: unknown head kind {head.kind!r}")
    return network.eval()
