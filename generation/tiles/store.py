"""Content-addressed tile files: hashing, lossless encoding and atomic writes.

Pure module (no Django): callers pass the store root. A tile's identity is the SHA-256 of its
decoded pixels, the RGB uint8 array of shape (H, W, 3) in C order, so the same pixels read from
a JPEG folder, a CSV manifest or an HDF5 file get the same id and are stored once.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

TILE_DIR = "tiles"


def pixel_sha256(pixels: np.ndarray) -> str:
    """Hex SHA-256 of an RGB uint8 array's bytes (C order)."""
    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()


def tile_relpath(sha256: str) -> PurePosixPath:
    """Where a tile lives under the store root: tiles/ab/cd/<sha256>.png."""
    return PurePosixPath(TILE_DIR, sha256[:2], sha256[2:4], f"{sha256}.png")


def encode_png(pixels: np.ndarray) -> bytes:
    """Lossless PNG of an (H, W, 3) uint8 array, with no metadata chunks."""
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename.

    A reader (or a re-run after a kill) sees either no file or the whole file, never a part.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp_name).replace(path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def read_tile(path: Path) -> np.ndarray:
    """Decode a stored tile back to its (H, W, 3) uint8 pixels."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))
