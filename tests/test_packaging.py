"""pyproject.toml: the folder tree is the import tree (every package imports from the folder of its name);
requirements are ranges whose exact versions constraints.txt pins; command groups name declared extras; the
licence."""

import hashlib
import importlib
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


# The source roots of pyproject's package search, each holding one top-level package of its own name.
SOURCE_ROOTS = {"siamstream": ROOT / "models", "siamstream_services": ROOT / "services"}


def package_directories() -> dict[str, Path]:
    """Every package directory below the source roots, by the dotted name its folders spell."""
    found = {}
    for name, root in SOURCE_ROOTS.items():
        for init in (root / name).rglob("__init__.py"):
            found[".".join(init.parent.relative_to(root).parts)] = init.parent
    return found


def test_source_roots_are_the_package_search() -> None:
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    assert sorted(find["where"]) == sorted(path.name for path in SOURCE_ROOTS.values())
    # No other package hides in a source root (models/packages holds tracker packages, not code).
    for root in SOURCE_ROOTS.values():
        tops = {init.parent.name for init in root.glob("*/__init__.py")}
        assert tops == {next(name for name, path in SOURCE_ROOTS.items() if path == root)}


def test_every_package_imports_from_the_folder_of_its_name() -> None:
    packages = package_directories()
    assert "siamstream_services.v1" in packages  # the gRPC stubs sit beside the service they serve
    for name, folder in packages.items():
        module = importlib.import_module(name)
        assert module.__file__ is not None, name
        assert Path(module.__file__).parent == folder, name


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
    found: dict[str, Version] = {}
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
