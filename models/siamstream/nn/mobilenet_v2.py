"""MobileNetV2 with the state-dict layout of pysot's `mobile_v2` checkpoints (`layer0..layer7`).

Layer strides [1,2,2,1,1,1,1] after a stride-2 stem, dilations [1,1,1,2,2,4,4]: stride 8 overall. Strided
convs are unpadded (pysot), so a 127 crop gives 15x15 maps and a 255 crop 31x31. With width 1.4 the used
layers 3/5/7 have 44/134/448 channels.
"""

from torch import Tensor, nn

# (expansion t, channels c, blocks n, stride s, dilation d) of layers 1..7.
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1, 1),
    (6, 24, 2, 2, 1),
    (6, 32, 3, 2, 1),
    (6, 64, 4, 1, 2),
    (6, 96, 3, 1, 2),
    (6, 160, 3, 1, 4),
    (6, 320, 1, 1, 4),
)
STEM_CHANNELS = 32


class InvertedResidual(nn.Module):
    """1x1 expand -> 3x3 depth-wise -> 1x1 project; keys `conv.{0,1,3,4,6,7}`, the expand conv even at t=1."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int, dilation: int):
        super().__init__()
        self.use_residual = stride == 1 and in_channels == out_channels
        hidden = in_channels * expansion
        padding = dilation if dilation > 1 else 2 - stride
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, padding, dilation, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.use_residual:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Sequential):
    """Backbone returning the outputs of `used_layers` (indices into layer0..layer7).

    Input: BGR crops [B,3,S,S], 0..255.
    """

    def __init__(self, width_mult: float, used_layers: tuple[int, ...]):
        super().__init__()
        self.used_layers = list(used_layers)
        in_channels = int(STEM_CHANNELS * width_mult)
        self.add_module(
            "layer0",
            nn.Sequential(
                nn.Conv2d(3, in_channels, 3, 2, 0, bias=False),
                nn.BatchNorm2d(in_channels),
                nn.ReLU6(inplace=True),
            ),
        )
        last_dilation = 1
        for index, (expansion, channels, blocks, stride, dilation) in enumerate(INVERTED_RESIDUAL_SETTING, 1):
            out_channels = int(channels * width_mult)
            # A layer that raises the dilation starts with half of it, like the atrous ResNet.
            first_dilation = dilation if dilation == last_dilation else max(dilation // 2, 1)
            layer = [InvertedResidual(in_channels, out_channels, stride, expansion, first_dilation)]
            layer += [
                InvertedResidual(out_channels, out_channels, 1, expansion, dilation) for _ in range(1, blocks)
            ]
            self.add_module(f"layer{index}", nn.Sequential(*layer))
            in_channels = out_channels
            last_dilation = dilation

    def forward(self, crop: Tensor) -> list[Tensor]:
        outputs: list[Tensor] = []
        x = crop
        for layer in self:
            x = layer(x)
            outputs.append(x)
        return [outputs[i] for i in self.used_layers]

    def output_side(self, input_side: int) -> int:
        """Side of the outputs of layers 3..7 for a square crop of `input_side` pixels."""
        side = input_side
        for _ in range(3):  # unpadded stride-2 3x3 convs of layer0, layer2 and layer3
            side = (side - 3) // 2 + 1
        return side
