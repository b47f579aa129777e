"""The ACM variants of SiamRPN++, SiamBAN and SiamFC: the correlation replaced by `nn.acm`.

Template embedding: one vector of `C` floats per level and branch ([cls, loc] per level, levels in
order; one vector for SiamFC), which already holds the box-size prior. Search outputs follow Contract 1
for the family. Key layouts: SiamBAN-ACM's released one (`head.box{2,3,4}.{cls,loc}.*`, `head.loc_scale`,
`head.cls_weight`, `head.loc_weight`); ours for SiamRPN++-ACM (`rpn_head.rpn{2,3,4}.{cls,loc}.*`, so that
the backbone, neck and `conv_kernel` / `conv_search` of a SiamRPN++ checkpoint fit it) and SiamFC-ACM
(`head.*`, one branch on the backbone maps with no `conv_kernel` / `conv_search`).
"""

from torch import Tensor

from siamstream.config import TrackerConfig
from siamstream.nn.acm import AsymmetricCorrelation, MultiACM
from siamstream.nn.backbones import Backbone
from siamstream.nn.neck import Neck
from siamstream.nn.network import SiameseNetwork, flatten_pieces


def _vector_pieces(vectors: list[Tensor]) -> Tensor:
    """Template vectors [B,C] -> one float32 embedding [B, n*C] in the [B,n,C,1,1] piece layout."""
    return flatten_pieces([vector.unsqueeze(-1).unsqueeze(-1) for vector in vectors])


class ACMRPNNetwork(SiameseNetwork):
    """SiamRPN++-ACM: outputs cls [B,2A,S,S] (`[bg x A, fg x A]`), loc [B,4A,S,S] (`[dx, dy, dw, dh] x A`)."""

    search_output_names = ("cls", "loc")
    feature_map_template = False

    def __init__(self, backbone: Backbone, neck: Neck, rpn_head: MultiACM, channels: int, levels: int):
        super().__init__(backbone, neck, 2 * levels, channels, 1)
        self.rpn_head = rpn_head

    def template_embedding(self, crop_z: Tensor, box_prior: Tensor) -> Tensor:
        return _vector_pieces(self.rpn_head.template_vectors(self.features(crop_z), box_prior))

    def search_outputs(self, template_embedding: Tensor, crop_x: Tensor) -> tuple[Tensor, Tensor]:
        return self.head_outputs(template_embedding, self.features(crop_x))

    def head_outputs(
        self, template_embedding: Tensor, search_features: list[Tensor]
    ) -> tuple[Tensor, Tensor]:
        cls, loc = self.rpn_head(self.template_pieces(template_embedding), search_features)
        return cls.float(), loc.float()


class ACMBANNetwork(SiameseNetwork):
    """SiamBAN-ACM: outputs cls [B,2,S,S], loc [B,4,S,S] (`l, t, r, b` crop px, exponentiated and fused)."""

    search_output_names = ("cls", "loc")
    feature_map_template = False

    def __init__(self, backbone: Backbone, neck: Neck, head: MultiACM, channels: int, levels: int):
        super().__init__(backbone, neck, 2 * levels, channels, 1)
        self.head = head

    def template_embedding(self, crop_z: Tensor, box_prior: Tensor) -> Tensor:
        return _vector_pieces(self.head.template_vectors(self.features(crop_z), box_prior))

    def search_outputs(self, template_embedding: Tensor, crop_x: Tensor) -> tuple[Tensor, Tensor]:
        return self.head_outputs(template_embedding, self.features(crop_x))

    def head_outputs(
        self, template_embedding: Tensor, search_features: list[Tensor]
    ) -> tuple[Tensor, Tensor]:
        cls, loc = self.head(self.template_pieces(template_embedding), search_features)
        return cls.float(), loc.float()


class ACMFCNetwork(SiameseNetwork):
    """SiamFC-ACM: one ACM branch on the AlexNet maps; output response [B,1,S,S] (a logit per cell)."""

    search_output_names = ("response",)
    feature_map_template = False

    def __init__(self, backbone: Backbone, head: AsymmetricCorrelation, channels: int):
        super().__init__(backbone, None, 1, channels, 1)
        self.head = head

    def template_embedding(self, crop_z: Tensor, box_prior: Tensor) -> Tensor:
        return _vector_pieces([self.head.template_vector(self.features(crop_z)[0], box_prior)])

    def search_outputs(self, template_embedding: Tensor, crop_x: Tensor) -> tuple[Tensor]:
        return self.head_outputs(template_embedding, self.features(crop_x))

    def head_outputs(self, template_embedding: Tensor, search_features: list[Tensor]) -> tuple[Tensor]:
        response = self.head(self.template_pieces(template_embedding)[0], search_features[0])
        return (response.float(),)


def build_acm_network(
    config: TrackerConfig, backbone: Backbone, neck: Neck | None, template_side: int
) -> SiameseNetwork:
    """The ACM network of `config` (head.correlation == "acm"); `template_side` is the side of the template
    maps the head sees (7 after the ResNet-50 neck, 6 for AlexNet)."""
    head = config.head
    channels = head.in_channels
    if head.kind == "siamfc":
        branch = AsymmetricCorrelation(channels, channels, 1, template_side, adjust=False)
        return ACMFCNetwork(backbone, branch, channels)
    if neck is None or head.levels == 1:
        raise ValueError(f"{config.name}: the ACM box heads need a neck and several levels")
    kernel_side = template_side - 2  # after the unpadded 3x3 `conv_kernel`
    if head.kind == "rpn":
        anchors = head.anchor_num
        rpn_head = MultiACM(
            "rpn", channels, head.levels, 2 * anchors, 4 * anchors, kernel_side, head.weighted
        )
        return ACMRPNNetwork(backbone, neck, rpn_head, channels, head.levels)
    if head.kind == "ban":
        ban_head = MultiACM("box", channels, head.levels, 2, 4, kernel_side, head.weighted)
        return ACMBANNetwork(backbone, neck, ban_head, channels, head.levels)
    raise ValueError(f"{config.name}: no ACM variant of head kind {head.kind!r}")
