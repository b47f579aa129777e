"""The explicit package list in pyproject.toml names every package directory of the tree."""

import tomllib
from pathlib import Path

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
