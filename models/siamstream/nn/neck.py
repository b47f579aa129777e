"""The adjust layer (neck): a 1x1 conv + BN per level to a common width, centre-cropping template maps."""

from torch import Tensor, nn

# Maps at least this wide are search maps and are never cropped (pysot's rule).
CROP_BELOW_SIDE = 20


class AdjustLayer(nn.Module):
    """1x1 conv (no bias) + BN; a map narrower than 20 is cropped to its centre `center_size` square."""

    def __init__(self, in_channels: int, out_channels: int, center_size: int):
        super().__init__()
        self.center_size = center_size
        self.crop_below_side = CROP_BELOW_SIDE
        self.downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, feature: Tensor) -> Tensor:
        feature = self.downsample(feature)
        side = feature.size(3)
        if side < self.crop_below_side:
            start = (side - self.center_size) // 2
            stop = start + self.center_size
            feature = feature[:, :, start:stop, start:stop]
        return feature

    def output_side(self, input_side: int) -> int:
        return self.center_size if input_side < CROP_BELOW_SIDE else input_side


class Neck(nn.ModuleDict):
    """One `AdjustLayer` per backbone level: keys `downsample2..4`, or `downsample` for a single level."""

    def __init__(self, in_channels: tuple[int, ...], out_channels: int, center_size: int):
        if len(in_channels) == 1:
            names = ["downsample"]
        else:
            names = [f"downsample{level}" for level in range(2, 2 + len(in_channels))]
        super().__init__(
            {
                name: AdjustLayer(channels, out_channels, center_size)
                for name, channels in zip(names, in_channels, strict=True)
            }
        )

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        adjusted: list[Tensor] = []
        for index, layer in enumerate(self.values()):
            adjusted.append(layer(features[index]))
        return adjusted

    def output_side(self, input_side: int) -> int:
        first = next(iter(self.values()))
        assert isinstance(first, AdjustLayer)  # every level is one (`__init__`)
        return first.output_side(input_side)
