"""PCam-style HDF5 sources: *_x.h5 tiles with their *_y.h5 labels, gzipped or not, checked
for shape and length before any tile is read."""

from __future__ import annotations

import gzip
import math
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from generation.tiles.items import (
    PCAM_SPLIT_RE,
    SourceError,
    SourceItem,
    TileSource,
    check_split,
)

HDF5_CHUNK = 1024  # tiles read from disk at a time: about 28 MB of pixels


def image_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and re.search(r"_x\.h5(\.gz)?$", p.name)
    )


def y_file_for(x_file: Path) -> Path:
    """The label file paired with an image file: `..._x.h5[.gz]` -> `..._y.h5[.gz]`."""
    name = re.sub(r"_x\.h5(\.gz)?$", r"_y.h5\1", x_file.name)
    if name == x_file.name:
        raise SourceError(f"{x_file}: expected an image file named *_x.h5 or *_x.h5.gz")
    return x_file.with_name(name)


def hdf5_source(path: Path, split: str | None, tile_size: int, cache: Path | None) -> TileSource:
    x_files = image_files(path) if path.is_dir() else [path]
    pairs = []
    for x_file in x_files:
        y_file = y_file_for(x_file)
        if not y_file.exists():
            raise SourceError(f"{x_file}: its label file {y_file.name} is missing")
        match = PCAM_SPLIT_RE.search(x_file.name)
        pair_split = split or (match.group(1) if match else None)
        if pair_split is None:
            raise SourceError(f"{x_file}: cannot tell the split from the name; pass --split")
        x_plain, y_plain = (_decompressed(f, cache) for f in (x_file, y_file))
        try:
            count = _check_hdf5_pair(x_plain, y_plain, x_file, y_file, tile_size)
        except SourceError:
            for plain, original in ((x_plain, x_file), (y_plain, y_file)):
                if plain != original:  # a decompressed copy of a bad file is worth nothing
                    plain.unlink(missing_ok=True)
            raise
        pairs.append((x_file.name, x_plain, y_plain, check_split(pair_split, str(x_file)), count))
    root = path if path.is_dir() else path.parent
    total = sum(p[4] for p in pairs)
    return TileSource(root, "hdf5", total, _hdf5_items(pairs))


def _decompressed(file: Path, cache: Path | None) -> Path:
    """A readable HDF5 path: the file itself, or its gunzipped copy kept in the cache."""
    if not file.name.endswith(".gz"):
        return file
    cache = cache or file.parent
    stat = file.stat()
    target = cache / "decompressed" / f"{stat.st_size}-{int(stat.st_mtime)}-{file.name[:-3]}"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with gzip.open(file, "rb") as src, tmp.open("wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 22)
        tmp.replace(target)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        tmp.unlink(missing_ok=True)
        raise SourceError(f"{file}: not a readable gzip file ({exc})") from exc
    return target


def _open_h5(plain: Path, shown: Path, key: str) -> h5py.File:
    try:
        handle = h5py.File(plain, "r")
    except OSError as exc:
        raise SourceError(f"{shown}: not a readable HDF5 file ({exc})") from exc
    try:
        _check_h5_dataset(handle, shown, key)
    except BaseException:
        handle.close()
        raise
    return handle


def _check_h5_dataset(handle: h5py.File, shown: Path, key: str) -> None:
    """`key` must be a dataset whose every element is stored in this file.

    A link, a virtual dataset or external raw storage would read another file (any file the
    importer can open); a small file can declare a huge dataset whose unwritten chunks read
    back as zeros, which would import for hours as one blank tile."""
    if isinstance(handle.get(key, getlink=True), h5py.ExternalLink):
        raise SourceError(f"{shown}: {key!r} links to another file; expected it in this file")
    if key not in handle or not isinstance(handle[key], h5py.Dataset):
        raise SourceError(f"{shown}: expected a dataset under key {key!r}")
    data = handle[key]
    if data.is_virtual or data.external:
        raise SourceError(
            f"{shown}: {key!r} reads its data from other files; expected it stored in this file"
        )
    if data.size == 0:
        return
    if data.chunks is None:
        stored, declared, unit = data.id.get_storage_size(), data.nbytes, "bytes"
    else:
        stored, unit = data.id.get_num_chunks(), "chunks"
        declared = math.prod(math.ceil(n / c) for n, c in zip(data.shape, data.chunks, strict=True))
    if stored < declared:
        raise SourceError(
            f"{shown}: {key!r} declares shape {data.shape} but stores only {stored} of its "
            f"{declared} {unit}; expected every tile written to the file"
        )


def _check_hdf5_pair(x_plain: Path, y_plain: Path, x_file: Path, y_file: Path, size: int) -> int:
    with _open_h5(x_plain, x_file, "x") as fx, _open_h5(y_plain, y_file, "y") as fy:
        x, y = fx["x"], fy["y"]
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (size, size, 3):
            raise SourceError(
                f"{x_file}: 'x' is {x.dtype} {x.shape}; expected uint8 N x {size} x {size} x 3"
            )
        if y.ndim < 1 or int(np.prod(y.shape[1:])) != 1 or y.dtype.kind not in "iub":
            raise SourceError(
                f"{y_file}: 'y' is {y.dtype} {y.shape}; expected integers N x 1 x 1 x 1"
            )
        if x.shape[0] != y.shape[0]:
            raise SourceError(
                f"{x_file} has {x.shape[0]} tiles but {y_file} has {y.shape[0]} labels; "
                "expected the same number"
            )
        return int(x.shape[0])


def _hdf5_items(pairs: list[tuple[str, Path, Path, str, int]]) -> Iterator[SourceItem]:
    for name, x_plain, y_plain, split, count in pairs:
        with h5py.File(x_plain, "r") as fx, h5py.File(y_plain, "r") as fy:
            for start in range(0, count, HDF5_CHUNK):
                stop = min(start + HDF5_CHUNK, count)
                try:
                    pixels = fx["x"][start:stop]  # (chunk, H, W, 3) uint8
                    labels = fy["y"][start:stop].reshape(-1)  # (chunk,)
                except OSError as exc:  # a corrupt chunk, found only when read
                    raise SourceError(f"{name}[{start}:{stop}]: cannot read ({exc})") from exc
                for offset, (tile, raw_label) in enumerate(zip(pixels, labels, strict=True)):
                    value = int(raw_label)
                    error = None if value in (0, 1) else f"label {value} (expected 0 or 1)"
                    yield SourceItem(
                        name,
                        start + offset,
                        value if error is None else 0,
                        split,
                        pixels=tile,
                        error=error,
                    )
