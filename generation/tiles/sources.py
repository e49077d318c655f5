"""Reading tiles from the formats users bring: image folders, CSV manifests, PCam HDF5 pairs.

Pure module (no Django). `open_source` inspects a path and returns a `TileSource`: how many
items it holds and an iterator over them. Items that can already be judged bad while listing
(a label outside {0, 1}, a file that is not an image) carry their error, so the caller decides
between aborting and skipping. Whole-source problems (x/y length mismatch, wrong HDF5 shape,
an empty source) raise `SourceError` at once.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from generation.tiles.hdf5 import hdf5_source, image_files
from generation.tiles.items import (
    FORMATS,
    IMAGE_SUFFIXES,
    SPLIT_RE,
    PreparedTile,
    SourceError,
    SourceItem,
    TileSource,
    check_split,
    parse_label,
)
from generation.tiles.store import encode_png, pixel_sha256, tile_relpath, write_atomic


def detect_format(path: Path) -> str:
    if path.is_dir():
        return "hdf5" if any(image_files(path)) else "folder"
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
        source = hdf5_source(path, split, tile_size, cache_dir)
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
