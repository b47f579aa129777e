"""Networks of the tracker library: backbones, necks, correlations, heads, the assembled networks with the
reference state-dict layouts, and their two TorchScript stages (Contract 1 in docs/architecture.md).

Each family and correlation variant registers its network builder (`network.register_network`) in its own
module; importing the package imports them all, so `build_network` knows every built-in network.
"""

from siamstream.nn import acm_network, dcfnet, matched_xcorr, siamcan  # noqa: F401  (register networks)
from siamstream.nn.network import SiameseNetwork, build_network, register_network
from siamstream.nn.stages import PRECISION_DTYPES, SearchStage, TemplateStage, script_stages

__all__ = [
    "PRECISION_DTYPES",
    "SearchStage",
    "SiameseNetwork",
    "TemplateStage",
    "build_network",
    "register_network",
    "script_stages",
]
