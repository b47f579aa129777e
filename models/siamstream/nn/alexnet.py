"""The two AlexNet backbones of the reference checkpoints.

- `AlexNetLegacy`: pysot's `alexnetlegacy` (SiamRPN AlexNet), keys `features.{0,1,4,5,8,9,11,12,14,15}`.
- `AlexNetSiamFC`: siamfc-pytorch's `AlexNetV1`, keys `conv{1..5}.*`, grouped convs and BN eps 1e-6.

Both are unpadded with total stride 8: 127 -> 6x6, 255 -> 22x22, 287 -> 26x26; 256 output channels.
"""

from torch import Tensor, nn


def alexnet_output_side(input_side: int) -> int:
    """Side of the last feature map: conv 11/2, pool 3/2, conv 5, pool 3/2, then three unpadded 3x3 convs."""
    side = (input_side - 11) // 2 + 1
    side = (side - 3) // 2 + 1
    side = side - 4
    side = (side - 3) // 2 + 1
    return side - 6


class AlexNetLegacy(nn.Module):
    """pysot AlexNet: conv-BN-maxpool-ReLU twice, conv-BN-ReLU twice, conv-BN (no final ReLU).

    Input: BGR crops [B,3,S,S], 0..255. Returns one map [B,256,s,s].
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 11, stride=2),
            nn.BatchNorm2d(96),
            nn.MaxPool2d(3, stride=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(96, 256, 5),
            nn.BatchNorm2d(256),
            nn.MaxPool2d(3, stride=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 384, 3),
            nn.BatchNorm2d(384),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, 3),
            nn.BatchNorm2d(384),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3),
            nn.BatchNorm2d(256),
        )

    def forward(self, crop: Tensor) -> list[Tensor]:
        return [self.features(crop)]

    def output_side(self, input_side: int) -> int:
        return alexnet_output_side(input_side)


class _SiamFCBatchNorm(nn.BatchNorm2d):
    """The batch norm of siamfc-pytorch: eps 1e-6 (it changes the outputs), momentum 0.05 (training only)."""

    def __init__(self, num_features: int):
        super().__init__(num_features, eps=1e-6, momentum=0.05)


class AlexNetSiamFC(nn.Module):
    """siamfc-pytorch AlexNetV1: conv-BN-ReLU-maxpool twice, conv-BN-ReLU twice, a bare conv with bias.

    conv2, conv4 and conv5 are grouped in two (the original two-GPU AlexNet). Input: BGR crops
    [B,3,S,S], 0..255. Returns one map [B,256,s,s].
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, 96, 11, stride=2), _SiamFCBatchNorm(96), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2)
        )
        self.conv2 = nn.Sequential(
            nn.Conv2d(96, 256, 5, groups=2), _SiamFCBatchNorm(256), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2)
        )
        self.conv3 = nn.Sequential(nn.Conv2d(256, 384, 3), _SiamFCBatchNorm(384), nn.ReLU(inplace=True))
        self.conv4 = nn.Sequential(
            nn.Conv2d(384, 384, 3, groups=2), _SiamFCBatchNorm(384), nn.ReLU(inplace=True)
        )
        self.conv5 = nn.Sequential(nn.Conv2d(384, 256, 3, groups=2))

    def forward(self, crop: Tensor) -> list[Tensor]:
        x = self.conv1(crop)
        x = self.conv2(x)
        x = self.conv3(x)
        x = self.conv4(x)
        return [self.conv5(x)]

    def output_side(self, input_side: int) -> int:
        return alexnet_output_side(input_side)
