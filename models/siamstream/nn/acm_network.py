"""The ACM variants of SiamRPN++, SiamBAN and SiamFC: the correlation replaced by `nn.acm`.

Template embedding: one vector of `C` floats per level and branch ([cls, loc] per level, levels in
order; one vector for SiamFC), which already holds the box-size prior (unless `acm_box_prior` is off).
Search outputs follow Contract 1 for the family. Key layouts: SiamBAN-ACM's released one
(`head.box{2,3,4}.{cls,loc}.*`, `head.loc_scale`, `head.cls_weight`, `head.loc_weight`); ours for
SiamRPN++-ACM (`rpn_head.rpn{2,3,4}.{cls,loc}.*`, so that the backbone, neck and `conv_kernel` /
`conv_search` of a SiamRPN++ checkpoint fit it) and SiamFC-ACM (`head.*`, one branch on the backbone maps
with no `conv_kernel` / `conv_search`).
"""

from torch import Tensor

from siamstream.config import TrackerConfig
from siamstream.nn.acm import ACMBoxLevel, AsymmetricCorrelation, MultiACM
from siamstream.nn.backbones import Backbone
from siamstream.nn.neck import Neck
from siamstream.nn.network import (
    KERNEL_BORDER,
    BANNetwork,
    FCNetwork,
    RPNNetwork,
    SiameseNetwork,
    backbone_and_neck,
    flatten_pieces,
    register_network,
)


def _vector_pieces(vectors: list[Tensor]) -> Tensor:
    """Template vectors [B,C] -> one float32 embedding [B, n*C] in the [B,n,C,1,1] piece layout."""
    return flatten_pieces([vector.unsqueeze(-1).unsqueeze(-1) for vector in vectors])


class BoxPriorTemplate:
    """Mixin of the ACM networks, listed before `SiameseNetwork`: the template embedding also holds the
    box prior, so no template can be built from feature maps alone (no template update)."""

    feature_map_template = False

    def template_from_features(self, template_features: list[Tensor]) -> Tensor:
        raise NotImplementedError("an ACM template also depends on the box prior")


class ACMRPNNetwork(BoxPriorTemplate, SiameseNetwork):
    """SiamRPN++-ACM: `RPNNetwork`'s outputs (cls, loc), with 1x1 pieces, from a `MultiACM` `rpn_head`."""

    search_output_names = RPNNetwork.search_output_names

    def __init__(self, backbone: Backbone, neck: Neck, rpn_head: MultiACM, channels: int, levels: int):
        super().__init__(backbone, neck, 2 * levels, channels, 1)
        self.rpn_head = rpn_head

    def template_embedding(self, crop_z: Tensor, box_prior: Tensor) -> Tensor:
        return _vector_pieces(self.rpn_head.template_vectors(self.features(crop_z), box_prior))

    def head_outputs(
        self, template_embedding: Tensor, search_features: list[Tensor]
    ) -> tuple[Tensor, Tensor]:
        cls, loc = self.rpn_head(self.template_pieces(template_embedding), search_features)
        return cls.float(), loc.float()


class ACMBANNetwork(BoxPriorTemplate, SiameseNetwork):
    """SiamBAN-ACM: `BANNetwork`'s outputs (cls, loc), with 1x1 pieces, from a `MultiACM` `head`."""

    search_output_names = BANNetwork.search_output_names

    def __init__(self, backbone: Backbone, neck: Neck, head: MultiACM, channels: int, levels: int):
        super().__init__(backbone, neck, 2 * levels, channels, 1)
        self.head = head

    def template_embedding(self, crop_z: Tensor, box_prior: Tensor) -> Tensor:
        return _vector_pieces(self.head.template_vectors(self.features(crop_z), box_prior))

    def head_outputs(
        self, template_embedding: Tensor, search_features: list[Tensor]
    ) -> tuple[Tensor, Tensor]:
        cls, loc = self.head(self.template_pieces(template_embedding), search_features)
        return cls.float(), loc.float()


class ACMFCNetwork(BoxPriorTemplate, SiameseNetwork):
    """SiamFC-ACM: one ACM branch on the AlexNet maps; `FCNetwork`'s output response [B,1,S,S] (a logit
    per cell)."""

    search_output_names = FCNetwork.search_output_names

    def __init__(self, backbone: Backbone, head: AsymmetricCorrelation, channels: int):
        super().__init__(backbone, None, 1, channels, 1)
        self.head = head

    def template_embedding(self, crop_z: Tensor, box_prior: Tensor) -> Tensor:
        return _vector_pieces([self.head.template_vector(self.features(crop_z)[0], box_prior)])

    def head_outputs(self, template_embedding: Tensor, search_features: list[Tensor]) -> tuple[Tensor]:
        response = self.head(self.template_pieces(template_embedding)[0], search_features[0])
        return (response.float(),)


@register_network("siamfc", correlation="acm")
def build_acm_fc_network(config: TrackerConfig) -> ACMFCNetwork:
    """SiamFC-ACM: one branch on the template maps of the backbone (6x6 for AlexNet)."""
    head = config.head
    backbone, _, template_side = backbone_and_neck(config)
    channels = head.in_channels
    branch = AsymmetricCorrelation(
        channels, channels, 1, template_side, adjust=False, box_prior=head.acm_box_prior
    )
    return ACMFCNetwork(backbone, branch, channels)


@register_network("rpn", correlation="acm")
def build_acm_rpn_network(config: TrackerConfig) -> ACMRPNNetwork:
    """SiamRPN++-ACM."""
    head = config.head
    backbone, neck, kernel_side = _box_head_trunk(config)
    anchors = head.anchor_num
    rpn_levels = [
        ACMBoxLevel(head.in_channels, 2 * anchors, 4 * anchors, kernel_side, head.acm_box_prior)
        for _ in range(head.levels)
    ]
    rpn_head = MultiACM("rpn", rpn_levels, head.weighted)
    return ACMRPNNetwork(backbone, neck, rpn_head, head.in_channels, head.levels)


@register_network("ban", correlation="acm")
def build_acm_ban_network(config: TrackerConfig) -> ACMBANNetwork:
    """SiamBAN-ACM."""
    head = config.head
    backbone, neck, kernel_side = _box_head_trunk(config)
    ban_levels = [
        ACMBoxLevel(head.in_channels, 2, 4, kernel_side, head.acm_box_prior) for _ in range(head.levels)
    ]
    ban_head = MultiACM("box", ban_levels, head.weighted)
    return ACMBANNetwork(backbone, neck, ban_head, head.in_channels, head.levels)


def _box_head_trunk(config: TrackerConfig) -> tuple[Backbone, Neck, int]:
    """Backbone, neck and kernel side (after the unpadded 3x3 `conv_kernel`) of the ACM box heads."""
    backbone, neck, template_side = backbone_and_neck(config)
    if neck is None or config.head.levels == 1:
        raise ValueError(f"{config.name}: the ACM box heads need a neck and several levels")
    return backbone, neck, template_side - KERNEL_BORDER
