"""Atrous ResNet-50 with the state-dict layout of pysot's `resnet_atrous` checkpoints.

Differences from torchvision: conv1 has no padding, the stride-2 convs of layer2 have no padding, the
downsample convs of layer2..4 are 3x3, and layer3/layer4 keep stride 8 with dilation 2/4 (the first block
of each uses half the dilation). Output sides: 15 for a 127 crop, 31 for a 255 crop.
"""

from torch import Tensor, nn

EXPANSION = 4
BLOCKS_PER_LAYER = (3, 4, 6, 3)


def _conv_bn(
    in_channels: int, out_channels: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> nn.Sequential:
    """Convolution without bias + batch norm, keys `0.*` and `1.*` (the downsample branch)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, padding, dilation, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided or dilated) -> 1x1 residual block; the first block of a layer has `downsample`."""

    def __init__(
        self, in_channels: int, planes: int, stride: int, dilation: int, downsample: nn.Module | None
    ):
        super().__init__()
        # Padding of the 3x3: 0 when strided, else its dilation (pysot keeps the strided conv unpadded).
        padding = dilation if stride == 1 else 0
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * EXPANSION, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * EXPANSION)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


def make_layer(in_channels: int, planes: int, blocks: int, stride: int, dilation: int) -> nn.Sequential:
    """`blocks` bottlenecks to `4 * planes` channels (pysot's `_make_layer`); the first one downsamples."""
    out_channels = planes * EXPANSION
    # The first block bridges from the previous layer's dilation, so it uses half of this layer's.
    first_dilation = max(dilation // 2, 1)
    if stride == 1 and dilation == 1:
        downsample = _conv_bn(in_channels, out_channels, 1)
    else:
        downsample = _conv_bn(
            in_channels,
            out_channels,
            3,
            stride,
            padding=first_dilation if dilation > 1 else 0,
            dilation=first_dilation,
        )
    layers = [Bottleneck(in_channels, planes, stride, first_dilation, downsample)]
    layers += [Bottleneck(out_channels, planes, 1, dilation, None) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class ResNet50Atrous(nn.Module):
    """Backbone returning the outputs of `used_layers` (indices into [stem, layer1, layer2, layer3, layer4]).

    Input: BGR crops [B,3,S,S], 0..255. Outputs of layers 2/3/4: 512/1024/2048 channels, all at stride 8.
    """

    def __init__(self, used_layers: tuple[int, ...]):
        super().__init__()
        self.used_layers = list(used_layers)
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=0, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = make_layer(64, 64, BLOCKS_PER_LAYER[0], stride=1, dilation=1)
        self.layer2 = make_layer(256, 128, BLOCKS_PER_LAYER[1], stride=2, dilation=1)
        self.layer3 = make_layer(512, 256, BLOCKS_PER_LAYER[2], stride=1, dilation=2)
        self.layer4 = make_layer(1024, 512, BLOCKS_PER_LAYER[3], stride=1, dilation=4)

    def forward(self, crop: Tensor) -> list[Tensor]:
        stem = self.relu(self.bn1(self.conv1(crop)))
        p1 = self.layer1(self.maxpool(stem))
        p2 = self.layer2(p1)
        p3 = self.layer3(p2)
        p4 = self.layer4(p3)
        outputs = [stem, p1, p2, p3, p4]
        return [outputs[i] for i in self.used_layers]

    def output_side(self, input_side: int) -> int:
        """Side of the used outputs (layers 2..4) for a square crop of `input_side` pixels."""
        side = (input_side - 7) // 2 + 1  # conv1
        side = (side - 1) // 2 + 1  # maxpool 3x3, stride 2, padding 1
        return (side - 3) // 2 + 1  # unpadded stride-2 3x3 of layer2
