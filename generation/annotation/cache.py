"""Per-tile embedding vectors cached in the database (TileEmbedding), keyed by the tile's
hash and the embedder's key, so annotation and FID embed each tile once per network."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from tqdm import tqdm

from generation.models import Tile, TileEmbedding
from generation.tiles.store import read_tile


def cached_features(
    shas: list[str],
    embedder,
    progress: bool = True,
    on_embedded: Callable[[int], None] | None = None,
) -> np.ndarray:
    """(len(shas), D) features; tiles without a cached vector are embedded, committed in
    batches (a killed run keeps what it embedded) and reported through on_embedded(n)."""
    unique = list(dict.fromkeys(shas))
    found: dict[str, np.ndarray] = {}
    for start in range(0, len(unique), 2000):
        rows = TileEmbedding.objects.filter(
            embedding_key=embedder.key, sha256__in=unique[start : start + 2000]
        ).values_list("sha256", "vector")
        found.update((sha, np.frombuffer(bytes(v), np.float32)) for sha, v in rows)
    missing = [s for s in unique if s not in found]
    store = Path(settings.MEDIA_ROOT)
    desc = f"embed {embedder.name}"
    with tqdm(total=len(missing), unit="tile", desc=desc, disable=not progress) as bar:
        for start in range(0, len(missing), 256):
            chunk = missing[start : start + 256]
            pixels = np.stack([read_tile(store / Tile(sha256=s).relpath) for s in chunk])
            vectors = embedder.embed(pixels)  # (n, D) float32
            with transaction.atomic():
                TileEmbedding.objects.bulk_create(
                    [TileEmbedding(sha256=s, embedding_key=embedder.key, vector=v.tobytes())
                     for s, v in zip(chunk, vectors, strict=True)],
                    ignore_conflicts=True,
                )  # fmt: skip
            found.update(zip(chunk, vectors, strict=True))
            if on_embedded:
                on_embedded(len(chunk))
            bar.update(len(chunk))
    return np.stack([found[s] for s in shas]).astype(np.float64)
