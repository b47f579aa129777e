"""Where the registered trackers' weights come from: the published files each one loads, with the pages
that publish them, the scores and licences stated there, or, for a tracker without public weights, the
commands that train and package it.

`docs/models.md` is generated from this module and the registry (`scripts/generate_docs.py`). Every value
was read off the page it cites, pinned to the commit it was read at; a page that states a score in percent
is recorded here as a fraction (70.0 -> 0.700).
"""

from __future__ import annotations

from dataclasses import dataclass

from siamstream.config import WeightsSource

PYSOT_ZOO = "https://github.com/STVIR/pysot/blob/017bb28625732ac69f88c38fcf831f254a9d70c2/MODEL_ZOO.md"
SIAMBAN_ZOO = "https://github.com/hqucv/siamban/blob/1cfdfebce5447ff44e6bba89a2bfccf4915d17c9/MODEL_ZOO.md"
SIAMCAR_README = (
    "https://github.com/ohhhyeahhh/SiamCAR/blob/76ddd528f2a70b0a3c0d1542e9b63aef642bf039/README.md"
)
ACM_README = (
    "https://github.com/wencheng256/SiamBAN-ACM/blob/aff0a1cd7b378ab8b0d64d4dde3da536a9625797/README.md"
)
SIAMFC_README = (
    "https://github.com/huanglianghua/siamfc-pytorch/blob/39572051d7c3d9850ca6100efa04091e18c2f706/README.md"
)
# The pysot and SiamBAN model zoos license their downloads apart from their Apache-2.0 code.
CC_BY_SA_3 = "CC BY-SA 3.0"

# The weights of every tracker without a `PUBLISHED_WEIGHTS` entry: trained with `siamstream train`, under
# this project's licence. Its registration states it, so the zoo and the registry agree on which trackers
# are trained here.
TRAINED_HERE = WeightsSource(origin="trained with siamstream (no public weights)", licence="Apache-2.0")


@dataclass(frozen=True)
class PublishedScore:
    """One score as its authors publish it for the weights: `value` is a fraction (AUC, EAO) or, for
    robustness, the benchmark's own unit; `source` is the page it was read from."""

    benchmark: str
    metric: str
    value: float
    source: str


@dataclass(frozen=True)
class PublishedWeights:
    """A public weight file a tracker loads with `siamstream import-checkpoint`.

    `file` is the name the authors give it (inside its experiment folder for pysot-style zoos), `page`
    where it is published, `download` the link the page gives for it ("" when the page gives none that
    can be quoted). `code_licence` covers the reference code, `weights_licence` the file itself.
    """

    file: str
    page: str
    download: str
    code_licence: str
    weights_licence: str
    scores: tuple[PublishedScore, ...] = ()
    note: str = ""

    @property
    def licence(self) -> str:
        """Both licences in one line: what the config of the tracker loading the file states
        (`WeightsSource.licence`)."""
        return f"code {self.code_licence}; weights {self.weights_licence}"


def _pysot_vot2018(eao: float, accuracy: float, robustness: float) -> tuple[PublishedScore, ...]:
    return (
        PublishedScore("VOT2018", "EAO", eao, PYSOT_ZOO),
        PublishedScore("VOT2018", "accuracy", accuracy, PYSOT_ZOO),
        PublishedScore("VOT2018", "robustness", robustness, PYSOT_ZOO),
    )


PUBLISHED_WEIGHTS: dict[str, PublishedWeights] = {
    "siamrpn_alex": PublishedWeights(
        file="siamrpn_alex_dwxcorr/model.pth",
        page=PYSOT_ZOO,
        download="https://drive.google.com/open?id=1t62x56Jl7baUzPTo0QrC4jJnwvPZm-2m",
        code_licence="Apache-2.0",
        weights_licence=CC_BY_SA_3,
        scores=_pysot_vot2018(0.352, 0.576, 0.290),
    ),
    "siamrpnpp_mobilenetv2": PublishedWeights(
        file="siamrpn_mobilev2_l234_dwxcorr/model.pth",
        page=PYSOT_ZOO,
        download="https://drive.google.com/open?id=1JB94pZTvB1ZByU-qSJn4ZAIfjLWE5EBJ",
        code_licence="Apache-2.0",
        weights_licence=CC_BY_SA_3,
        scores=_pysot_vot2018(0.410, 0.586, 0.229),
    ),
    "siamrpnpp_r50": PublishedWeights(
        file="siamrpn_r50_l234_dwxcorr/model.pth",
        page=PYSOT_ZOO,
        download="https://drive.google.com/open?id=1Q4-1563iPwV6wSf_lBHDj5CPFiGSlEPG",
        code_licence="Apache-2.0",
        weights_licence=CC_BY_SA_3,
        scores=_pysot_vot2018(0.415, 0.601, 0.234),
    ),
    "siamrpnpp_r50_otb": PublishedWeights(
        file="siamrpn_r50_l234_dwxcorr_otb/model.pth",
        page=PYSOT_ZOO,
        download="https://drive.google.com/open?id=1Cx_oHu6o0gNeH7F9zZrgevfAGdyWC4D5",
        code_licence="Apache-2.0",
        weights_licence=CC_BY_SA_3,
        scores=(
            PublishedScore("OTB2015", "AUC", 0.696, PYSOT_ZOO),
            PublishedScore("OTB2015", "precision", 0.914, PYSOT_ZOO),
        ),
    ),
    "siamban_r50": PublishedWeights(
        file="siamban_r50_l234/model.pth",
        page=SIAMBAN_ZOO,
        download="https://drive.google.com/file/d/1SJwPUpTQm6xL44-8jLvDrSMhOzVsbLAZ/view?usp=sharing",
        code_licence="Apache-2.0",
        weights_licence=CC_BY_SA_3,
        scores=(
            PublishedScore("VOT2018", "EAO", 0.452, SIAMBAN_ZOO),
            PublishedScore("VOT2018", "accuracy", 0.597, SIAMBAN_ZOO),
            PublishedScore("VOT2018", "robustness", 0.178, SIAMBAN_ZOO),
        ),
    ),
    "siamcar_r50": PublishedWeights(
        file="general_model.pth",
        page=SIAMCAR_README,
        download="https://drive.google.com/drive/folders/1ud0iF4Vm96TfxOddUHV1LoY-soF2zk8b?usp=sharing",
        code_licence="none stated (no LICENSE file)",
        weights_licence="none stated",
        scores=(
            PublishedScore("OTB100", "AUC", 0.700, SIAMCAR_README),
            PublishedScore("OTB100", "precision", 0.914, SIAMCAR_README),
            PublishedScore("UAV123", "AUC", 0.640, SIAMCAR_README),
            PublishedScore("VOT2018", "EAO", 0.423, SIAMCAR_README),
        ),
        note="Often renamed model_general.pth. The README's GOT-10k and LaSOT scores are for its "
        "got10k_model and LaSOT_model files, which this config's OTB hyperparameters do not match.",
    ),
    "siamban_acm_r50": PublishedWeights(
        file="weight_VOT2019.zip (VOT) or LaSOT_weight_config.zip (LaSOT): archives of weights and config",
        page=ACM_README,
        download="",
        code_licence="Apache-2.0",
        weights_licence="none stated",
        note="The README spells the download links with a blank after 'https:' against crawlers. The "
        "repository publishes no scores (its MODEL_ZOO.md is SiamBAN's); the ACM paper reports SiamBAN-ACM "
        "11.3% above SiamBAN in LaSOT AUC.",
    ),
    "siamfc_alexnet": PublishedWeights(
        file="siamfc_alexnet_e50.pth",
        page=SIAMFC_README,
        download="https://drive.google.com/file/d/1UdxuBQ1qtisoWYFZxLgMFJ9mJtGVw6n4/view?usp=sharing",
        code_licence="MIT",
        weights_licence="MIT (shipped with the code)",
        scores=(
            PublishedScore("OTB2015", "AUC", 0.578, SIAMFC_README),
            PublishedScore("OTB2015", "precision", 0.765, SIAMFC_README),
            PublishedScore("GOT-10k", "AO", 0.355, SIAMFC_README),
        ),
        note="The README heads its scores 'the scores are not updated yet': they may predate the file.",
    ),
}


def published_weights(tracker: str) -> PublishedWeights | None:
    """The public weights `tracker` loads, or None when it has none (then `training_commands` apply)."""
    return PUBLISHED_WEIGHTS.get(tracker)


def import_command(tracker: str) -> str:
    """The command that turns `tracker`'s published weight file into a tracker package."""
    return f"siamstream import-checkpoint --tracker {tracker} --weights FILE.pth --out packages/{tracker}"


def training_commands(tracker: str) -> tuple[str, str]:
    """The commands that train `tracker` on a dataset and package its checkpoint of epoch NNN."""
    return (
        f"siamstream train --tracker {tracker} --data DATASET_ROOT --out runs/{tracker}",
        f"siamstream export --checkpoint runs/{tracker}/checkpoint_eNNN.pth --out packages/{tracker}",
    )
