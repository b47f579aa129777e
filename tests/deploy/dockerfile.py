"""The Dockerfile read as build stages of (INSTRUCTION, arguments), for the tests that check it."""

from __future__ import annotations

from tests.deploy.tools import ROOT

DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    logical, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def stages() -> dict[str, list[tuple[str, str]]]:
    """Build stage name -> its instructions."""
    result: dict[str, list[tuple[str, str]]] = {}
    name = None
    for instruction, arguments in instructions():
        if instruction == "FROM":
            name = arguments.split(" AS ")[-1].strip()
            result[name] = []
        elif name is not None:
            result[name].append((instruction, arguments))
    return result


def global_args() -> dict[str, str]:
    args = {}
    for instruction, arguments in instructions():
        if instruction == "ARG" and "=" in arguments:
            key, value = arguments.split("=", 1)
            args[key] = value
    return args
