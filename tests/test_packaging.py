"""pyproject.toml: the explicit package list names every package directory of the tree; requirements are
ranges whose exact versions constraints.txt pins; command groups name declared extras; the licence."""

import hashlib
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def package_directories() -> set[str]:
    roots = {"siamstream": ROOT / "models" / "siamstream", "siamstream_services": ROOT / "services"}
    found = set()
    for name, root in roots.items():
        for init in root.rglob("__init__.py"):
            relative = init.parent.relative_to(root).parts
            found.add(".".join((name, *relative)))
    return found


def test_every_package_directory_is_listed() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert package_directories() == listed


# The canonical text of https://www.apache.org/licenses/LICENSE-2.0.txt.
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirements() -> list[Requirement]:
    """The library's requirements and those of every extra."""
    texts = [*project()["dependencies"]]
    for group in project()["optional-dependencies"].values():
        texts += group
    return [Requirement(text) for text in texts]


def pins() -> dict[str, Version]:
    """constraints.txt as {normalised name: version}."""
    found = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            found[canonicalize_name(name)] = Version(version)
    return found


def test_requirements_are_ranges_with_their_pin_inside() -> None:
    pinned = pins()
    for requirement in requirements():
        operators = {spec.operator for spec in requirement.specifier}
        assert operators == {">=", "<"}, f"{requirement}: state a range, pin in constraints.txt"
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} has no pin in constraints.txt"
        assert requirement.specifier.contains(pinned[name]), f"pin {pinned[name]} outside {requirement}"


def test_constraints_pin_only_requirements_and_hold_torch() -> None:
    names = {canonicalize_name(requirement.name) for requirement in requirements()}
    assert set(pins()) == names
    assert "torch" in {canonicalize_name(Requirement(text).name) for text in project()["dependencies"]}


def test_command_groups_name_declared_extras() -> None:
    declared = set(project()["optional-dependencies"])
    for name, target in project()["entry-points"]["siamstream.commands"].items():
        extras = re.search(r"\[(.*)\]", target)
        if extras:
            assert set(extras[1].split(",")) <= declared, name


def test_makefile_installs_every_extra_under_the_constraints() -> None:
    install = re.search(r"-c constraints\.txt -e '\.\[(.*)\]'", (ROOT / "Makefile").read_text())
    assert install, "the Makefile installs the project without the constraints"
    assert set(install[1].split(",")) == set(project()["optional-dependencies"])


def test_licence_file_is_the_declared_apache_licence() -> None:
    assert project()["license"] == "Apache-2.0"
    assert hashlib.sha256((ROOT / "LICENSE").read_bytes()).hexdigest() == APACHE_2_SHA256
