"""What a tile source yields: items with their origin (or the error found while listing),
prepared tiles, and the checks of labels and split names shared by every format."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
FORMATS = ("folder", "csv", "hdf5")
LABEL_NAMES = {
    "0": 0,
    "healthy": 0,
    "normal": 0,
    "negative": 0,
    "1": 1,
    "tumour": 1,
    "tumor": 1,
    "cancer": 1,
    "positive": 1,
}
SPLIT_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
PCAM_SPLIT_RE = re.compile(r"split_([a-z]+)_x\.h5(\.gz)?$")


class SourceError(ValueError):
    """A problem with the whole source; the message names the file and what was expected."""


@dataclass(frozen=True)
class SourceItem:
    """One tile to import: where it came from, its label and split, and how to get its pixels."""

    source: str  # path relative to the import root (or the HDF5 file name)
    index: int | None  # row in an HDF5 file or line in a CSV manifest
    label: int
    split: str
    path: Path | None = None  # image file to decode; None when pixels are given
    pixels: np.ndarray | None = field(default=None, compare=False)
    error: str | None = None  # already known to be invalid, and why
    manifest: str | None = None  # CSV manifest naming the file; `index` is then its line

    @property
    def where(self) -> str:
        return describe(self.source, self.index, self.manifest)


@dataclass(frozen=True)
class PreparedTile:
    """The outcome of decoding one item: its pixel hash, or the reason it is invalid."""

    source: str
    index: int | None
    label: int
    split: str
    sha256: str | None
    error: str | None
    manifest: str | None = None

    @property
    def where(self) -> str:
        return describe(self.source, self.index, self.manifest)


def describe(source: str, index: int | None, manifest: str | None) -> str:
    """How errors name an item: `a/b.jpg`, `x.h5[12]` or `m.csv line 3: a/b.jpg`."""
    if manifest is not None:
        return f"{manifest} line {index}: {source}"
    return source if index is None else f"{source}[{index}]"


@dataclass
class TileSource:
    root: Path
    format: str
    count: int
    items: Iterator[SourceItem]


def parse_label(value: str) -> int | None:
    return LABEL_NAMES.get(value.strip().lower())


def check_split(split: str, where: str) -> str:
    if not SPLIT_RE.match(split):
        raise SourceError(f"{where}: split {split!r} must be 1-32 letters, digits, '_' or '-'")
    return split
