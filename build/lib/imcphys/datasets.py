"""Measured datasets shipped with imcphys.

The repository's ``datasets/`` folder installs with the package (as package data, the folder itself): one folder
per dataset with its CSV file(s) in the project's convention (``name [unit]`` headers), its licence and a
``PROVENANCE.md`` (origin, what was measured, columns and units, known traps). :func:`load_dataset` reads a
dataset's CSV into a :class:`~imcphys.data.Dataset` (SI columns); :func:`dataset_names` lists them.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

from .data import Dataset, load_csv


def datasets_dir() -> Path:
    """The folder of the embedded datasets (the repository's ``datasets/``, installed with the package)."""
    return Path(str(importlib.resources.files("imcphys") / "_resources" / "datasets"))


def dataset_names() -> list[str]:
    """Names of the embedded datasets."""
    return sorted(p.name for p in datasets_dir().iterdir() if (p / "PROVENANCE.md").is_file())


def dataset_dir(name: str) -> Path:
    """The folder of dataset ``name`` (its CSV files, ``LICENSE`` and ``PROVENANCE.md``)."""
    path = datasets_dir() / name
    if not (path / "PROVENANCE.md").is_file():
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(dataset_names())}")
    return path


def dataset_files(name: str) -> list[Path]:
    """The CSV files of dataset ``name``, sorted by file name."""
    return sorted(dataset_dir(name).rglob("*.csv"))


def provenance(name: str) -> str:
    """The provenance note of dataset ``name`` (Markdown)."""
    return (dataset_dir(name) / "PROVENANCE.md").read_text()


def load_dataset(name: str, file: str | None = None, **kwargs: Any) -> Dataset:
    """Dataset ``name`` as a :class:`~imcphys.data.Dataset` (SI columns): its one CSV file, or the CSV file named
    ``file`` (its file name, or its path inside the dataset's folder) when it has several. ``kwargs`` go to
    :func:`imcphys.load_csv`."""
    files = dataset_files(name)
    if file is None:
        if len(files) != 1:
            shown = ", ".join(str(f.relative_to(dataset_dir(name))) for f in files)
            raise ValueError(f"dataset {name!r} has {len(files)} CSV files; name one with file=...: {shown}")
        return load_csv(files[0], **kwargs)
    matches = [f for f in files if f.name == file or str(f.relative_to(dataset_dir(name))) == file]
    if not matches:
        raise ValueError(f"dataset {name!r} has no CSV file {file!r}")
    return load_csv(matches[0], **kwargs)
