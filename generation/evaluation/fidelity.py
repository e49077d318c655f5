"""Fidelity measures of a generator beyond FID (pure numpy/torch, no Django).

- reconstruction: PSNR and SSIM of the autoencoder's encode-decode of held-out real tiles;
- label fidelity: ROC AUC of a real-trained tumour classifier on synthetic tiles, scored
  against the label each tile was prompted with;
- morphology fidelity: the share of synthetic tiles whose nearest morphology cluster is the
  one they were prompted with, beside the share that chance agreement would give;
- machine readers: classifiers trained to tell real from synthetic tiles on held-out folds,
  after the presentation pipeline a pathologist's screen gets (so JPEG history is equal).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from generation.annotation.features import quality
from generation.evaluation.classifier import ClassifierConfig, Scores, evaluate, predict, train
from histostudy.statistics import proportion


@dataclass(frozen=True)
class Reconstruction:
    psnr: float  # dB, mean over tiles
    ssim: float  # mean over tiles, RGB
    n: int


def reconstruction_quality(original: np.ndarray, reconstructed: np.ndarray) -> Reconstruction:
    """Mean PSNR (per tile, 8-bit peak) and SSIM of two (N, H, W, 3) uint8 arrays."""
    from skimage.metrics import structural_similarity

    if original.shape != reconstructed.shape or original.ndim != 4:
        raise ValueError(
            f"need two (N, H, W, 3) arrays of one shape, got {original.shape} and "
            f"{reconstructed.shape}"
        )
    diff = original.astype(np.float64) - reconstructed.astype(np.float64)
    mse = np.maximum((diff**2).reshape(len(diff), -1).mean(axis=1), 1e-10)
    psnr = 10 * np.log10(255.0**2 / mse)
    ssim = [
        structural_similarity(a, b, channel_axis=2, data_range=255)
        for a, b in zip(original, reconstructed, strict=True)
    ]
    return Reconstruction(float(psnr.mean()), float(np.mean(ssim)), len(original))


@dataclass(frozen=True)
class Agreement:
    """k of n synthetic tiles landed in the cluster they were prompted with."""

    k: int
    n: int
    share: float
    low: float  # Wilson 95%
    high: float
    chance: float  # expected share if assignments ignored the prompt (same marginals)


def morphology_agreement(prompted: np.ndarray, assigned: np.ndarray) -> Agreement:
    """Share of tiles whose assigned cluster is the prompted one, and the chance share
    sum_k p_k q_k of the two marginals (the expected agreement in Cohen's kappa)."""
    prompted, assigned = np.asarray(prompted, int), np.asarray(assigned, int)
    if prompted.shape != assigned.shape or not len(prompted):
        raise ValueError("one assigned cluster per prompted cluster, at least one tile")
    k = int((prompted == assigned).sum())
    n = len(prompted)
    size = int(max(prompted.max(), assigned.max())) + 1
    p = np.bincount(prompted, minlength=size) / n
    q = np.bincount(assigned, minlength=size) / n
    share = proportion(k, n)
    return Agreement(k, n, share.value, share.low, share.high, float((p * q).sum()))


@dataclass(frozen=True)
class ReaderResult:
    """A machine reader's out-of-fold scores: positive = synthetic."""

    name: str
    folds: int
    scores: Scores

    def as_dict(self) -> dict:
        return {"name": self.name, "folds": self.folds, **asdict(self.scores)}


def fold_ids(n_real: int, n_synthetic: int, folds: int, seed: int) -> np.ndarray:
    """A fold per tile, real tiles first: each fold holds a balanced share of both kinds."""
    if folds < 2 or min(n_real, n_synthetic) < folds:
        raise ValueError(
            f"{folds} folds need at least {folds} real and synthetic tiles "
            f"(got {n_real} and {n_synthetic})"
        )
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.permutation(np.arange(n) % folds) for n in (n_real, n_synthetic)])


def cnn_reader(
    real: np.ndarray,
    synthetic: np.ndarray,
    config: ClassifierConfig,
    folds: int = 4,
    seed: int = 0,
    device=None,
    progress: bool = False,
) -> ReaderResult:
    """The utility CNN retrained to call real (0) or synthetic (1), scored out of fold."""
    tiles = np.concatenate([real, synthetic])
    truth = np.r_[np.zeros(len(real), int), np.ones(len(synthetic), int)]
    fold = fold_ids(len(real), len(synthetic), folds, seed)
    probabilities = np.empty(len(tiles))
    for f in range(folds):
        held = fold == f
        model, _ = train(
            tiles[~held], truth[~held], config, seed=seed + f, device=device, progress=progress
        )
        probabilities[held] = predict(model, tiles[held], device=device)
    return ReaderResult("cnn", folds, evaluate(truth, probabilities))


def statistics_reader(
    real_stats: np.ndarray, synthetic_stats: np.ndarray, folds: int = 4, seed: int = 0
) -> ReaderResult:
    """Logistic regression on per-tile image statistics (sharpness, file size, colour): what a
    careful person with a spreadsheet could tell apart, scored out of fold."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.concatenate([real_stats, synthetic_stats]).astype(np.float64)
    truth = np.r_[np.zeros(len(real_stats), int), np.ones(len(synthetic_stats), int)]
    fold = fold_ids(len(real_stats), len(synthetic_stats), folds, seed)
    probabilities = np.empty(len(x))
    for f in range(folds):
        held = fold == f
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        model.fit(x[~held], truth[~held])
        probabilities[held] = model.predict_proba(x[held])[:, 1]
    return ReaderResult("image statistics", folds, evaluate(truth, probabilities))


def image_statistics(tiles: np.ndarray, file_sizes: Sequence[int]) -> np.ndarray:
    """(N, D) statistics of presented tiles: the served file's size in bytes, the quality
    filter's statistics (HSV moments, sharpness as the variance of the Laplacian, contours) and
    the RGB means and standard deviations."""

    rows = []
    for tile, size in zip(tiles, file_sizes, strict=True):
        flat = tile.reshape(-1, 3).astype(np.float64)
        stats = asdict(quality(tile))
        rows.append([size, *stats.values(), *flat.mean(axis=0), *flat.std(axis=0)])
    return np.array(rows, np.float64)
