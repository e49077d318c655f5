"""Reading tiles from the formats users bring: image folders, CSV manifests, PCam HDF5 pairs.

Pure module (no Django). `open_source` inspects a path and returns a `TileSource`: how many
items it holds and an iterator over them. Items that can already be judged bad while listing
(a label outside {0, 1}, a file that is not an image) carry their error, so the caller decides
between aborting and skipping. Whole-source problems (x/y length mismatch, wrong HDF5 shape,
an empty source) raise `SourceError` at once.
"""

from __future__ import annotations

import csv
import gzip
import math
import os
import re
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
from PIL import Image, UnidentifiedImageError

from generation.tilestore import encode_png, pixel_sha256, tile_relpath, write_atomic

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
HDF5_CHUNK = 1024  # tiles read from disk at a time: about 28 MB of pixels


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


def detect_format(path: Path) -> str:
    if path.is_dir():
        return "hdf5" if any(_x_files(path)) else "folder"
    name = path.name.lower()
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".h5", ".h5.gz", ".hdf5")):
        return "hdf5"
    raise SourceError(
        f"{path}: cannot tell the format; expected a folder, a .csv manifest or an .h5/.h5.gz "
        "file (or pass --format)"
    )


def open_source(
    path: Path,
    fmt: str | None = None,
    split: str | None = None,
    tile_size: int = 96,
    cache_dir: Path | None = None,
) -> TileSource:
    """List the tiles under `path`; see the module docstring."""
    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    fmt = fmt or detect_format(path)
    if split is not None:
        check_split(split, "--split")
    if fmt == "folder":
        source = _folder_source(path, split)
    elif fmt == "csv":
        source = _csv_source(path, split)
    elif fmt == "hdf5":
        source = _hdf5_source(path, split, tile_size, cache_dir)
    else:
        raise SourceError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if source.count == 0:
        raise SourceError(f"{path}: empty source, no tiles found ({_expected_layout(fmt)})")
    return source


def _expected_layout(fmt: str) -> str:
    return {
        "folder": "expected <split>/<label>/*.png|jpg|jpeg|tif with label 0 or 1",
        "csv": "expected a header 'path,label[,split]' and one row per tile",
        "hdf5": "expected *_x.h5 with N x H x W x 3 uint8 under 'x' and *_y.h5 under 'y'",
    }[fmt]


# --- image folders ---------------------------------------------------------------------------


def _visible_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _folder_source(root: Path, split: str | None) -> TileSource:
    if not root.is_dir():
        raise SourceError(f"{root}: expected a folder <split>/<label>/*.png|jpg|jpeg|tif")
    top = _visible_dirs(root)
    if top and all(parse_label(d.name) is not None for d in top):
        # <label>/* directly under the root: one split, which the user names.
        if split is None:
            raise SourceError(f"{root}: the folder has no <split> level; pass --split")
        groups = [(split, d) for d in top]
    else:
        groups = [(check_split(s.name, str(s)), d) for s in top for d in _visible_dirs(s)]
        if split is not None:
            groups = [(s, d) for s, d in groups if s == split]
    inside = root.resolve()
    entries: list[SourceItem] = []
    for split_name, label_dir in groups:
        label = parse_label(label_dir.name)
        for file in sorted(label_dir.iterdir()):
            if file.name.startswith(".") or not file.is_file():
                continue
            rel = file.relative_to(root).as_posix()
            error = _folder_file_error(file, label_dir.name, inside)
            entries.append(SourceItem(rel, None, label or 0, split_name, path=file, error=error))
    return TileSource(root, "folder", len(entries), iter(entries))


def _folder_file_error(file: Path, label_name: str, inside: Path) -> str | None:
    """Why a file in a label folder cannot be imported, or None."""
    if parse_label(label_name) is None:
        return f"label folder {label_name!r} is not a label (expected 0 or 1)"
    if file.suffix.lower() not in IMAGE_SUFFIXES:
        return f"not an image file (expected {', '.join(IMAGE_SUFFIXES)})"
    if not file.resolve().is_relative_to(inside):  # a symlink, or one in the folder path
        return f"a link to {file.resolve()}, outside the import folder {inside}"
    return None


# --- CSV manifests ---------------------------------------------------------------------------


def _read_manifest(manifest: Path) -> list[list[str]]:
    """The manifest's rows; UTF-8 with or without the BOM spreadsheets write."""
    line = 0
    try:
        with manifest.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            rows = []
            for row in reader:
                line = reader.line_num
                rows.append(row)
    except UnicodeDecodeError as exc:
        raise SourceError(f"{manifest}: not UTF-8 text ({exc}); expected a CSV file") from exc
    except csv.Error as exc:  # e.g. a field past csv.field_size_limit()
        raise SourceError(f"{manifest} line {line + 1}: {exc}; expected a CSV file") from exc
    except OSError as exc:
        raise SourceError(f"{manifest}: cannot read the manifest ({exc})") from exc
    return rows


def _csv_source(manifest: Path, split: str | None) -> TileSource:
    base = manifest.parent.resolve()
    rows = _read_manifest(manifest)
    if not rows:
        raise SourceError(f"{manifest}: empty manifest ({_expected_layout('csv')})")
    header = [h.strip().lower() for h in rows[0]]
    if "path" not in header or "label" not in header:
        raise SourceError(f"{manifest}: line 1 must be a header with 'path' and 'label' columns")
    has_split = "split" in header
    if not has_split and split is None:
        raise SourceError(f"{manifest}: no 'split' column; add one or pass --split")
    col = {name: header.index(name) for name in header}
    entries = []
    for line_no, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        entries.append(
            _csv_item(manifest, base, line_no, row, col, split if not has_split else None)
        )
    return TileSource(base, "csv", len(entries), iter(entries))


def _csv_item(
    manifest: Path, base: Path, line_no: int, row: list[str], col: dict[str, int], split: str | None
) -> SourceItem:
    def cell(name: str) -> str:
        return row[col[name]].strip() if col[name] < len(row) else ""

    raw_path, raw_label = cell("path"), cell("label")
    row_split = split or cell("split")
    label = parse_label(raw_label)
    file, error = _manifest_file(base, raw_path)
    if error is None:
        if label is None:
            error = f"label {raw_label!r} is not a label (expected 0 or 1)"
        elif not SPLIT_RE.match(row_split):
            error = f"split {row_split!r} must be 1-32 letters, digits, '_' or '-'"
        elif not _is_file(file):
            error = f"no such file {raw_path!r}"
    source = raw_path if error else file.relative_to(base).as_posix()
    return SourceItem(
        source,
        line_no,
        label or 0,
        row_split or "?",
        path=None if error else file,
        error=error,
        manifest=manifest.name,
    )


def _manifest_file(base: Path, raw_path: str) -> tuple[Path, str | None]:
    """The file a manifest row names, every symlink followed, or why it cannot be read: only
    files under the manifest's folder are, whatever `..`, absolute paths or links say."""
    if not raw_path:
        return base, "empty path"
    try:
        file = (base / raw_path).resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # a NUL byte, a symlink loop
        return base, f"path {raw_path!r} cannot be resolved ({exc})"
    if not file.is_relative_to(base):
        return file, f"path {raw_path!r} points outside the manifest's folder {base}"
    return file, None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # e.g. a name longer than the file system allows
        return False


# --- PCam HDF5 pairs -------------------------------------------------------------------------


def _x_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and re.search(r"_x\.h5(\.gz)?$", p.name)
    )


def y_file_for(x_file: Path) -> Path:
    """The label file paired with an image file: `..._x.h5[.gz]` -> `..._y.h5[.gz]`."""
    name = re.sub(r"_x\.h5(\.gz)?$", r"_y.h5\1", x_file.name)
    if name == x_file.name:
        raise SourceError(f"{x_file}: expected an image file named *_x.h5 or *_x.h5.gz")
    return x_file.with_name(name)


def _hdf5_source(path: Path, split: str | None, tile_size: int, cache: Path | None) -> TileSource:
    x_files = _x_files(path) if path.is_dir() else [path]
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


# --- decoding (runs in worker processes) -----------------------------------------------------


def load_pixels(item: SourceItem, tile_size: int) -> np.ndarray:
    """The item's pixels as (tile_size, tile_size, 3) uint8, or ValueError saying what is wrong."""
    if item.pixels is not None:
        return item.pixels
    assert item.path is not None
    expected = f"{tile_size}x{tile_size} RGB"
    pixels = None
    try:
        # The header's size is checked before any pixel is decoded, so a small file that
        # declares a huge image is refused without the allocation; Pillow's warning for
        # such sizes says nothing more.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(item.path) as image:
                mode, size = image.mode, image.size
                if mode == "RGB" and size == (tile_size, tile_size):
                    image.load()
                    pixels = np.asarray(image)
    except Image.DecompressionBombError as exc:
        raise ValueError(f"image too large to decode ({exc}); expected {expected}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ValueError(f"not a readable image ({exc})") from exc
    if pixels is None:
        raise ValueError(f"image is {size[0]}x{size[1]} {mode}; expected {expected}")
    return pixels


def prepare_tile(item: SourceItem, tile_size: int, store: Path, staging: Path) -> PreparedTile:
    """Decode and hash one item, and stage its PNG unless the store already has it."""

    def outcome(sha: str | None, error: str | None) -> PreparedTile:
        return PreparedTile(
            item.source, item.index, item.label, item.split, sha, error, item.manifest
        )

    if item.error is not None:
        return outcome(None, item.error)
    try:
        pixels = load_pixels(item, tile_size)
    except ValueError as exc:
        return outcome(None, str(exc))
    sha = pixel_sha256(pixels)
    staged = staging / f"{sha}.png"
    if not (store / tile_relpath(sha)).exists() and not staged.exists():
        write_atomic(staged, encode_png(pixels))
    return outcome(sha, None)
