"""Networks of the tracker library: backbones, necks, correlations, heads, the assembled networks with the
reference state-dict layouts, and their two TorchScript stages (Contract 1 in docs/architecture.md)."""

from siamstream.nn.network import SiameseNetwork, build_network
from siamstream.nn.stages import PRECISION_DTYPES, SearchStage, TemplateStage, script_stages

__all__ = [
    "PRECISION_DTYPES",
    "SearchStage",
    "SiameseNetwork",
    "TemplateStage",
    "build_network",
    "script_stages",
]
