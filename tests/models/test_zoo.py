"""The model zoo: `siamstream.zoo` covers the registry, its commands are real commands, and docs/models.md
is what scripts/generate_docs.py writes."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from siamstream.cli.main import build_parser
from siamstream.registry import get_config, list_trackers
from siamstream.zoo import (
    PUBLISHED_WEIGHTS,
    TRAINED_HERE,
    import_command,
    published_weights,
    training_commands,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_zoo_names_only_registered_trackers() -> None:
    assert set(PUBLISHED_WEIGHTS) <= set(list_trackers())


@pytest.mark.parametrize("tracker", list_trackers())
def test_published_weights_exactly_for_trackers_not_trained_here(tracker: str) -> None:
    # A tracker registered with a public origin must get its zoo entry, and one trained here must not.
    weights = get_config(tracker).weights
    assert (published_weights(tracker) is None) == (weights == TRAINED_HERE), weights.origin


@pytest.mark.parametrize("tracker", list_trackers())
def test_the_page_commands_parse_as_siamstream_commands(
    tracker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The placeholders name files the commands require to exist.
    monkeypatch.chdir(tmp_path)
    Path("FILE.pth").touch()
    Path("runs", tracker).mkdir(parents=True)
    Path("runs", tracker, "checkpoint_eNNN.pth").touch()
    published = published_weights(tracker) is not None
    commands = (import_command(tracker),) if published else training_commands(tracker)

    parsed = [build_parser().parse_args(shlex.split(command)[1:]) for command in commands]

    assert all(shlex.split(command)[0] == "siamstream" for command in commands)
    assert [args.command for args in parsed] == (["import-checkpoint"] if published else ["train", "export"])
    assert parsed[0].tracker == tracker
    assert parsed[-1].out == Path("packages", tracker)


def test_reference_weights_and_their_published_scores() -> None:
    # Values as the pysot and SiamBAN MODEL_ZOO pages print them.
    siamrpn = published_weights("siamrpnpp_r50")
    siamban = published_weights("siamban_r50")
    assert siamrpn is not None and siamban is not None
    assert siamrpn.file == "siamrpn_r50_l234_dwxcorr/model.pth"
    assert {(s.benchmark, s.metric): s.value for s in siamrpn.scores}[("VOT2018", "EAO")] == 0.415
    assert siamban.file == "siamban_r50_l234/model.pth"
    assert {(s.benchmark, s.metric): s.value for s in siamban.scores}[("VOT2018", "EAO")] == 0.452
    assert all(score.source == siamban.page for score in siamban.scores)
    page = (REPO_ROOT / "docs" / "models.md").read_text()
    assert "| `siamrpnpp_r50` | VOT2018 | EAO | 0.415 |" in page
    assert "`siamstream train --tracker siamcan_r50 --data DATASET_ROOT --out runs/siamcan_r50`" in page


@pytest.mark.parametrize("tracker", sorted(PUBLISHED_WEIGHTS))
def test_a_config_states_the_licences_of_its_published_weights(tracker: str) -> None:
    # `siamstream models --json` prints the config's line; docs/models.md the zoo's two columns.
    published = published_weights(tracker)
    assert published is not None
    assert get_config(tracker).weights.licence == (
        f"code {published.code_licence}; weights {published.weights_licence}"
    )


def test_licences_of_reference_weights() -> None:
    # As the pysot MODEL_ZOO and the SiamBAN-ACM README state them: the pysot downloads are CC BY-SA 3.0
    # apart from the Apache-2.0 code, and SiamBAN-ACM states no licence for its weights.
    assert get_config("siamrpnpp_r50").weights.licence == "code Apache-2.0; weights CC BY-SA 3.0"
    assert get_config("siamban_acm_r50").weights.licence == "code Apache-2.0; weights none stated"
    page = (REPO_ROOT / "docs" / "models.md").read_text()
    assert "| Apache-2.0 | none stated |" in page
