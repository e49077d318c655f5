"""Plots for people: written as PNG files with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


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
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
