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
from siamstream.nn.network import BANNetwork, FCNetwork, RPNNetwork, SiameseNetwork, flatten_pieces


def _vector_pieces(vectors: list[Tensor]) -> Tensor:
    """Template vectors [B,C] -> one float32 embedding [B, n*C] in the [B,n,C,1,1] piece layout."""
    return flatten_pieces([vector.unsqueeze(-1).unsqueeze(-1) for vector in vectors])


class BoxPriorTemplate:
    """Mixin of the ACM networks, listed before their family's network: the template embedding also holds
    the box prior, so no template can be built from feature maps alone (no template update)."""

    feature_map_template = False

    def template_from_features(self, template_features: list[Tensor]) -> Tensor:
        raise NotImplementedError("an ACM template also depends on the box prior")


class ACMRPNNetwork(BoxPriorTemplate, RPNNetwork):
    """SiamRPN++-ACM: `RPNNetwork`'s outputs, with 1x1 pieces, from a `MultiACM` `rpn_head`."""

    def __init__(self, backbone: Backbone, neck: Neck, rpn_head: MultiACM, channels: int, levels: int):
        super().__init__(backbone, neck, rpn_head, 1, channels, levels)

    def template_embedding(self, crop_z: Tensor, box_prior: Tensor) -> Tensor:
        return _vector_pieces(self.rpn_head.template_vectors(self.features(crop_z), box_prior))


class ACMBANNetwork(BoxPriorTemplate, BANNetwork):
    """SiamBAN-ACM: `BANNetwork`'s outputs, with 1x1 pieces, from a `MultiACM` `head`."""

    def __init__(self, backbone: Backbone, neck: Neck, head: MultiACM, channels: int, levels: int):
        super().__init__(backbone, neck, head, 1, channels, levels)

    def template_embedding(self, crop_z: Tensor, box_prior: Tensor) -> Tensor:
        return _vector_pieces(self.head.template_vectors(self.features(crop_z), box_prior))


class ACMFCNetwork(BoxPriorTemplate, FCNetwork):
    """SiamFC-ACM: one ACM branch on the AlexNet maps; output response [B,1,S,S] (a logit per cell)."""

    def __init__(self, backbone: Backbone, head: AsymmetricCorrelation, channels: int):
        super().__init__(backbone, head, 1, channels)

    def template_embedding(self, crop_z: Tensor, box_prior: Tensor) -> Tensor:
        return _vector_pieces([self.head.template_vector(self.features(crop_z)[0], box_prior)])


def build_acm_network(
    config: TrackerConfig, backbone: Backbone, neck: Neck | None, template_side: int
) -> SiameseNetwork:
    """The ACM network of `config` (head.correlation == "acm"); `template_side` is the side of the template
    maps the head sees (7 after the ResNet-50 neck, 6 for AlexNet)."""
    head = config.head
    channels = head.in_channels
    prior = head.acm_box_prior
    if head.kind == "siamfc":
        branch = AsymmetricCorrelation(channels, channels, 1, template_side, adjust=False, box_prior=prior)
        return ACMFCNetwork(backbone, branch, channels)
    if neck is None or head.levels == 1:
        raise ValueError(f"{config.name}: the ACM box heads need a neck and several levels")
    kernel_side = template_side - 2  # after the unpadded 3x3 `conv_kernel`
    if head.kind == "rpn":
        anchors = head.anchor_num
        rpn_levels = [
            ACMBoxLevel(channels, 2 * anchors, 4 * anchors, kernel_side, prior) for _ in range(head.levels)
        ]
        rpn_head = MultiACM("rpn", rpn_levels, head.weighted)
        return ACMRPNNetwork(backbone, neck, rpn_head, channels, head.levels)
    if head.kind == "ban":
        ban_levels = [ACMBoxLevel(channels, 2, 4, kernel_side, prior) for _ in range(head.levels)]
        ban_head = MultiACM("box", ban_levels, head.weighted)
        return ACMBANNetwork(backbone, neck, ban_head, channels, head.levels)
    raise ValueError(f"{config.name}: no ACM variant of head kind {head.kind!r}")
