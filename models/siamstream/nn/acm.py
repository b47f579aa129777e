"""The asymmetric convolution module (ACM, "Learning to Fuse Asymmetric Feature Maps in Siamese Trackers",
CVPR 2021) and the multi-level box heads built from it.

ACM replaces the (depth-wise) cross-correlation. A convolution over the concatenation of a template map and
a same-sized window of the search map splits into two convolutions with template-sized kernels, one on each
map, whose results are summed by broadcasting. The template side also embeds the target's box size (the
prior) through a small MLP. Per frame only the search side runs: the template side of a branch reduces to
one vector, which is the whole per-stream state of that branch.

Key layout of a branch (SiamBAN-ACM's `DepthwiseXCorr`): `conv_kernel` / `conv_search` (3x3 conv, BN,
ReLU; identity when the features are used as they are), `xorr_kernel` (template-sized conv with bias ->
[C,1,1]), `xorr_search` (the same kernel size, no bias), `xorr_bbox` (Linear(2,32)-BN-ReLU-Linear(32,32)-
BN-ReLU-Linear(32,C, no bias)), `xorr_activate` (BN-ReLU-3x3 conv-BN-ReLU) and `head` (3x3 conv-BN-ReLU-
3x3 conv, padded).

The prior enters as SiamBAN-ACM's `init` / `track` add it: the embedded box size `xorr_bbox(w, h)` is one
more [C] term summed with the template and search terms before `xorr_activate`. Without the prior (the
paper's ablation, `HeadConfig.acm_box_prior` off) that term is left out and `xorr_bbox` is not built.
"""

from torch import Tensor, nn

from siamstream.nn.depthwise import MultiBoxHead, _conv3x3_bn_relu

BOX_PRIOR_HIDDEN = 32


def fusion_activation(hidden: int) -> nn.Sequential:
    """`xorr_activate`: BN, ReLU, padded 3x3 conv, BN, ReLU on the fused map."""
    return nn.Sequential(
        nn.BatchNorm2d(hidden),
        nn.ReLU(inplace=True),
        nn.Conv2d(hidden, hidden, 3, padding=1),
        nn.BatchNorm2d(hidden),
        nn.ReLU(inplace=True),
    )


def fusion_head(hidden: int, out_channels: int) -> nn.Sequential:
    """`head`: padded 3x3 conv, BN, ReLU, padded 3x3 conv to `out_channels`."""
    return nn.Sequential(
        nn.Conv2d(hidden, hidden, 3, padding=1),
        nn.BatchNorm2d(hidden),
        nn.ReLU(inplace=True),
        nn.Conv2d(hidden, out_channels, 3, padding=1),
    )


class AsymmetricCorrelation(nn.Module):
    """One ACM branch: template map + box prior -> vector; search map + vector -> head output.

    `kernel_side` is the side of the template map after `conv_kernel` (5 for 7x7 neck maps, 6 for SiamFC's
    AlexNet map); the search map shrinks by `kernel_side - 1` (plus 2 with `adjust`), e.g. 31 -> 25.
    Without `box_prior` the branch has no `xorr_bbox` and its template vector ignores the prior.
    """

    def __init__(
        self,
        in_channels: int,
        hidden: int,
        out_channels: int,
        kernel_side: int,
        adjust: bool,
        box_prior: bool = True,
    ):
        super().__init__()
        self.conv_kernel = _conv3x3_bn_relu(in_channels, hidden) if adjust else nn.Identity()
        self.conv_search = _conv3x3_bn_relu(in_channels, hidden) if adjust else nn.Identity()
        self.xorr_kernel = nn.Conv2d(hidden, hidden, kernel_side, bias=True)
        self.xorr_search = nn.Conv2d(hidden, hidden, kernel_side, bias=False)
        self.xorr_bbox = (
            nn.Sequential(
                nn.Linear(2, BOX_PRIOR_HIDDEN),
                nn.BatchNorm1d(BOX_PRIOR_HIDDEN),
                nn.ReLU(inplace=True),
                nn.Linear(BOX_PRIOR_HIDDEN, BOX_PRIOR_HIDDEN),
                nn.BatchNorm1d(BOX_PRIOR_HIDDEN),
                nn.ReLU(inplace=True),
                nn.Linear(BOX_PRIOR_HIDDEN, hidden, bias=False),
            )
            if box_prior
            else None
        )
        self.xorr_activate = fusion_activation(hidden)
        self.head = fusion_head(hidden, out_channels)

    def template_vector(self, template_feature: Tensor, box_prior: Tensor) -> Tensor:
        """[B, hidden]: the template term plus the box-size term; `box_prior` [B,2] is the target (w, h)
        in template-crop pixels (unused by a branch without the prior)."""
        kernel_term = self.xorr_kernel(self.conv_kernel(template_feature)).flatten(1)
        if self.xorr_bbox is None:
            return kernel_term
        return kernel_term + self.xorr_bbox(box_prior)

    def forward(self, template_vector: Tensor, search_feature: Tensor) -> Tensor:
        """Head output for search maps [B,C,H,W] and template vectors [B,hidden,1,1] (broadcast)."""
        search_term = self.xorr_search(self.conv_search(search_feature))
        return self.head(self.xorr_activate(search_term + template_vector))


class ACMBoxLevel(nn.Module):
    """One level of a box head with a `cls` and a `loc` ACM branch (SiamBAN-ACM's `DepthwiseBAN`)."""

    def __init__(
        self, in_channels: int, cls_channels: int, loc_channels: int, kernel_side: int, box_prior: bool = True
    ):
        super().__init__()
        self.cls = AsymmetricCorrelation(
            in_channels, in_channels, cls_channels, kernel_side, adjust=True, box_prior=box_prior
        )
        self.loc = AsymmetricCorrelation(
            in_channels, in_channels, loc_channels, kernel_side, adjust=True, box_prior=box_prior
        )

    def template_vectors(self, template_feature: Tensor, box_prior: Tensor) -> list[Tensor]:
        """`[cls_vector, loc_vector]`, each [B, C]."""
        return [
            self.cls.template_vector(template_feature, box_prior),
            self.loc.template_vector(template_feature, box_prior),
        ]

    def forward(self, vectors: list[Tensor], search_features: list[Tensor]) -> tuple[Tensor, Tensor]:
        """(cls, loc) of `[its search map]`, the list `MultiBoxHead` passes every level."""
        return self.cls(vectors[0], search_features[0]), self.loc(vectors[1], search_features[0])


class MultiACM(MultiBoxHead):
    """`ACMBoxLevel`s fused like the depth-wise heads: `level_name` `box` for SiamBAN-ACM (loc
    exponentiated with `loc_scale` before the fusion), `rpn` for SiamRPN++-ACM (raw anchor deltas)."""

    def template_vectors(self, template_features: list[Tensor], box_prior: Tensor) -> list[Tensor]:
        """`[cls, loc]` vectors [B, C] of each level in turn."""
        vectors: list[Tensor] = []
        for index, level in enumerate(self.values()):
            # A ModuleDict yields `nn.Module`s, and TorchScript takes no cast: each is an `ACMBoxLevel`.
            vectors.extend(level.template_vectors(template_features[index], box_prior))  # type: ignore[operator]
        return vectors
