"""One checksum for a set of model files: a generator's weights, a base model's frozen parts."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path


def files_sha256(root: Path, files: Iterable[Path]) -> str:
    """SHA-256 over each file's path relative to `root` and its bytes, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.relative_to(root).as_posix().encode())
        with path.open("rb") as handle:
            while block := handle.read(1 << 22):
                digest.update(block)
    return digest.hexdigest()
