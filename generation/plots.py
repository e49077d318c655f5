"""Plots for people: written as PNG files with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _save(fig: plt.Figure, out: Path) -> Path:
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def cluster_overview(clustering: object, out: Path) -> Path:
    """Bar chart of cluster sizes split by label, so skewed or tiny clusters stand out."""
    clusters = list(clustering.clusters.order_by("index"))  # type: ignore[attr-defined]
    index = [c.index for c in clusters]
    healthy = [c.healthy for c in clusters]
    tumour = [c.tumour for c in clusters]
    fig, ax = plt.subplots(figsize=(11, 4), dpi=120)
    ax.bar(index, healthy, color="#c97fb5", label="healthy")
    ax.bar(index, tumour, bottom=healthy, color="#4b2a7a", label="tumour")
    ax.set_xlabel("morphology type (cluster index)")
    ax.set_ylabel("accepted tiles")
    ax.set_xticks(index)
    ax.set_title(
        f"{clustering.dataset}: {clustering.k} morphology types from {clustering.embedding} "  # type: ignore[attr-defined]
        f"embeddings, n = {sum(healthy) + sum(tumour)}"
    )
    ax.legend()
    return _save(fig, out)


def short_caption(prompt: str) -> str:
    """'Histology image of cancer tissue, morphology type twelve, dense nuclei' ->
    'cancer, type twelve' and the attribute words on a second line: fits under a tile."""
    head, _, rest = prompt.removeprefix("Histology image of ").partition(", morphology type ")
    cluster, _, words = rest.partition(", ")
    text = head.removesuffix(" tissue") + (f", type {cluster}" if cluster else "")
    return text + (f"\n{words}" if words else "")


def sample_grid(tiles: object, captions: list[str], out: Path, columns: int = 8) -> Path:
    """Tiles (N, 96, 96, 3) uint8 in a grid, each captioned (e.g. the end of its prompt)."""
    import numpy as np

    tiles = np.asarray(tiles)
    rows = int(np.ceil(len(tiles) / columns))
    fig, axes = plt.subplots(
        rows, columns, figsize=(columns * 1.6, rows * 1.8), dpi=110, squeeze=False
    )
    for ax in axes.ravel():
        ax.axis("off")
    for ax, tile, caption in zip(axes.ravel(), tiles, captions, strict=False):
        ax.imshow(tile, interpolation="nearest")
        ax.set_title(caption, fontsize=6)
    return _save(fig, out)


def loss_curve(losses_csv: Path, out: Path) -> Path:
    """The training losses of both phases against their steps, smoothed over 25 steps."""
    import csv

    import numpy as np

    by_phase: dict[str, list[float]] = {}
    with losses_csv.open() as handle:
        for row in csv.DictReader(handle):
            by_phase.setdefault(row["phase"], []).append(float(row["loss"]))
    fig, axes = plt.subplots(1, len(by_phase) or 1, figsize=(10, 3.2), dpi=110, squeeze=False)
    for ax, (phase, values) in zip(axes.ravel(), by_phase.items(), strict=False):
        ax.plot(values, color="#c97fb5", alpha=0.5, label="per step")
        if len(values) >= 25:
            smooth = np.convolve(values, np.ones(25) / 25, mode="valid")
            ax.plot(np.arange(24, len(values)), smooth, color="#4b2a7a", label="mean of 25")
        ax.set_title(f"{phase} loss")
        ax.set_xlabel("step")
        ax.legend()
    return _save(fig, out)
