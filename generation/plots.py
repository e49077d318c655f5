"""Plots for people: written as PNG files with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from generation.models import FidelityEvaluation


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, imported on the first plot: the web pages and
    commands that import this module without drawing never pay for matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, out: Path) -> Path:
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    pyplot().close(fig)
    return out


def cluster_overview(clustering: object, out: Path) -> Path:
    """Bar chart of cluster sizes split by label, so skewed or tiny clusters stand out."""
    plt = pyplot()
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
    return save(fig, out)


def short_caption(prompt: str) -> str:
    """'Histology image of cancer tissue, morphology type twelve, dense nuclei' ->
    'cancer, type twelve' and the attribute words on a second line: fits under a tile."""
    head, _, rest = prompt.removeprefix("Histology image of ").partition(", morphology type ")
    cluster, _, words = rest.partition(", ")
    text = head.removesuffix(" tissue") + (f", type {cluster}" if cluster else "")
    return text + (f"\n{words}" if words else "")


def sample_grid(tiles: object, captions: list[str], out: Path, columns: int = 8) -> Path:
    """Tiles (N, 96, 96, 3) uint8 in a grid, each captioned (e.g. the end of its prompt)."""
    plt = pyplot()

    tiles = np.asarray(tiles)
    rows = int(np.ceil(len(tiles) / columns))
    fig, axes = plt.subplots(
        rows, columns, figsize=(columns * 1.6, rows * 1.8), dpi=110, squeeze=False
    )
    for ax in axes.ravel():
        ax.axis("off")
    for ax, tile, caption in zip(axes.ravel(), tiles, captions, strict=False):
        ax.imshow(tile, interpolation="nearest")
        ax.set_title(caption, fontsize=7)
    return save(fig, out)


def loss_curve(losses_csv: Path, out: Path) -> Path:
    """The training losses of both phases against their steps, smoothed over 25 steps."""
    plt = pyplot()

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
    return save(fig, out)


def fidelity_profile(evaluation: FidelityEvaluation, out: Path) -> Path:
    """One evaluate_generator result at a glance: FIDs against the real-vs-real floor and the
    autoencoder's ceiling; coverage shares against the floor and chance; AUCs against 0.5."""
    plt = pyplot()
    e = evaluation
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(13, 3.6), dpi=110)
    fids = [("synthetic", e.fid, "#4b2a7a"), ("real floor", e.floor_fid, "#9a9a9a")]
    if e.rfid is not None:
        fids.append(("autoencoder\n(rFID)", e.rfid, "#c97fb5"))
    left.barh([f[0] for f in fids], [f[1] for f in fids], color=[f[2] for f in fids])
    left.invert_yaxis()
    left.set_xlabel("FID against the held-out reference (lower is better)")
    left.set_title(f"image quality, n = {e.n_synthetic} vs {e.n_real}")
    shares = [
        ("precision", e.precision, e.floor_precision),
        ("recall", e.recall, e.floor_recall),
    ]
    if e.morphology_share is not None:
        shares.append(("morphology\nagreement", e.morphology_share, e.morphology_chance))
    shares = [tuple(float("nan") if v is None else v for v in s) for s in shares]
    y = range(len(shares))
    middle.barh([i - 0.2 for i in y], [s[1] for s in shares], 0.4, color="#4b2a7a",
                label="synthetic")  # fmt: skip
    middle.barh([i + 0.2 for i in y], [s[2] for s in shares], 0.4, color="#9a9a9a",
                label="real floor / chance")  # fmt: skip
    middle.set_yticks(list(y), [s[0] for s in shares])
    middle.invert_yaxis()
    middle.set_xlim(0, 1)
    middle.set_title("coverage and prompt agreement")
    middle.legend(fontsize=7, loc="lower right")
    aucs = []
    if e.label_auc is not None:
        aucs.append(("label fidelity", e.label_auc, e.label_auc_low, e.label_auc_high))
    if e.reader_auc is not None:
        aucs.append(("machine reader", e.reader_auc, e.reader_auc_low, e.reader_auc_high))
    utility = getattr(e, "utility", None)
    if utility is not None:
        aucs.append(("trained on\nsynthetic", utility.auc, utility.auc_low, utility.auc_high))
    for i, (_, value, low, high) in enumerate(aucs):
        if low is None or high is None:  # no interval (one case of a class): the point alone
            right.plot(value, i, "o", color="#4b2a7a")
            continue
        right.errorbar(value, i, xerr=[[value - low], [high - value]], fmt="o", color="#4b2a7a")
    if e.label_auc_real is not None:
        right.axvline(e.label_auc_real, color="#c97fb5", ls="--", lw=1,
                      label="tumour classifier on real tiles")  # fmt: skip
    right.axvline(0.5, color="#9a9a9a", ls=":", lw=1, label="chance")
    right.set_yticks(range(len(aucs)), [a[0] for a in aucs])
    right.invert_yaxis()
    right.set_xlim(0.3, 1.0)
    right.set_xlabel("ROC AUC (95% CI)")
    right.set_title("machines: label, realism, utility")
    right.legend(fontsize=7, loc="lower left")
    fig.suptitle(f"{e.generator.name}: cohort {e.cohort.name}", fontsize=10)
    return save(fig, out)
