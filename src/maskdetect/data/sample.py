"""The sample data shipped inside the package: a small CC0 subset of the andrewmvd photo set."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

SAMPLE_VOC = "andrewmvd"  # the VOC set inside the sample folder: annotations/ + images/


def sample_data_dir() -> Path:
    """The shipped sample folder; its VOC photo set is ``sample_data_dir() / "andrewmvd"``.

    Raises:
        FileNotFoundError: the package was installed without its assets.

    >>> (sample_data_dir() / SAMPLE_VOC / "annotations").is_dir()
    True
    """
    path = Path(str(importlib.resources.files("maskdetect").joinpath("assets", "sample")))
    if not (path / SAMPLE_VOC).is_dir():
        raise FileNotFoundError(f"sample data not found at {path}: reinstall maskdetect with its assets")
    return path
