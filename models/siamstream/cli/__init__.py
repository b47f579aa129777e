"""The `siamstream` console script."""

from siamstream.cli.main import main

__all__ = ["main"]
