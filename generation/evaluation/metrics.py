"""Image-set distances over feature vectors (Inception-v3 pool features): FID and KID.

Pure numpy/scipy; the caller embeds the tiles (generation.annotation.embeddings) and caches
features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg

SMALL_N = 2048  # FID is biased below this many tiles per set; KID is not


@dataclass(frozen=True)
class Moments:
    """Mean and covariance of a feature set, and its size."""

    mean: np.ndarray  # (D,)
    cov: np.ndarray  # (D, D)
    n: int

    @classmethod
    def of(cls, features: np.ndarray) -> Moments:
        features = np.asarray(features, np.float64)
        if features.ndim != 2 or len(features) < 2:
            raise ValueError(f"need an (N >= 2, D) feature array, got shape {features.shape}")
        return cls(features.mean(axis=0), np.cov(features, rowvar=False), len(features))


def frechet_distance(a: Moments, b: Moments) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)).

    The trace of the square root is taken from the eigenvalues of the symmetric matrix
    S_a^(1/2) S_b S_a^(1/2), which has the same spectrum as S_a S_b but no complex round-off
    (the usual sqrtm of the product can return small imaginary parts or fail to converge
    when the covariances are singular, as they are when N < D).
    """
    diff = a.mean - b.mean
    root_a = _psd_sqrt(a.cov)
    middle = root_a @ b.cov @ root_a
    eigen = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = float(np.sqrt(np.clip(eigen, 0, None)).sum())
    return float(diff @ diff + np.trace(a.cov) + np.trace(b.cov) - 2 * trace_sqrt)


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    """FID of two (N, D) feature sets; exact, and fast when a set has fewer tiles than D.

    With centred features X_a, X_b, the non-zero eigenvalues of S_a S_b are the squared
    singular values of X_a X_b^T / sqrt((n_a - 1)(n_b - 1)), so Tr (S_a S_b)^(1/2) is that
    matrix's nuclear norm: an (n_a, n_b) SVD instead of two (D, D) eigendecompositions.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if min(len(a), len(b)) >= a.shape[1]:
        return frechet_distance(Moments.of(a), Moments.of(b))
    ma, mb = Moments.of(a), Moments.of(b)
    xa, xb = a - ma.mean, b - mb.mean
    cross = xa @ xb.T / np.sqrt((len(a) - 1) * (len(b) - 1))  # (n_a, n_b)
    trace_sqrt = float(np.linalg.svd(cross, compute_uv=False).sum())
    diff = ma.mean - mb.mean
    trace_a = float((xa * xa).sum() / (len(a) - 1))
    trace_b = float((xb * xb).sum() / (len(b) - 1))
    return float(diff @ diff + trace_a + trace_b - 2 * trace_sqrt)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


@dataclass(frozen=True)
class Kid:
    mean: float
    std: float
    subsets: int
    subset_size: int
    seed: int


def kernel_inception_distance(
    x: np.ndarray, y: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> Kid:
    """Unbiased MMD^2 with the polynomial kernel (x.y / D + 1)^3, averaged over seeded subsets."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature sizes differ: {x.shape[1]} and {y.shape[1]}")
    m = min(subset_size, len(x), len(y))
    if m < 2:
        raise ValueError("KID needs at least 2 tiles in each set")
    rng = np.random.default_rng(seed)
    dim = x.shape[1]
    values = np.empty(subsets)
    for i in range(subsets):
        a = x[rng.choice(len(x), m, replace=False)]
        b = y[rng.choice(len(y), m, replace=False)]
        kxx = (a @ a.T / dim + 1) ** 3
        kyy = (b @ b.T / dim + 1) ** 3
        kxy = (a @ b.T / dim + 1) ** 3
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        values[i] = within - 2 * kxy.mean()
    return Kid(float(values.mean()), float(values.std()), subsets, m, seed)


@dataclass(frozen=True)
class PrecisionRecall:
    """Improved precision and recall (Kynkäänniemi et al. 2019): how much of the synthetic set
    lies on the real manifold, and how much of the real manifold the synthetic set covers."""

    precision: float
    recall: float
    k: int
    n_real: int
    n_synthetic: int


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) Euclidean distances."""
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.clip(squared, 0, None))


def _knn_radii(x: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    """Distance from each point to its k-th nearest other point of the same set."""
    radii = np.empty(len(x))
    for start in range(0, len(x), chunk):
        d = _distances(x[start : start + chunk], x)  # includes the point itself at 0
        radii[start : start + chunk] = np.partition(d, k, axis=1)[:, k]
    return radii


def _inside(points: np.ndarray, centres: np.ndarray, radii: np.ndarray, chunk: int = 1024
            ) -> np.ndarray:  # fmt: skip
    inside = np.empty(len(points), bool)
    for start in range(0, len(points), chunk):
        d = _distances(points[start : start + chunk], centres)
        inside[start : start + chunk] = (d <= radii[None, :]).any(axis=1)
    return inside


def precision_recall(real: np.ndarray, synthetic: np.ndarray, k: int = 3) -> PrecisionRecall:
    real, synthetic = np.asarray(real, np.float64), np.asarray(synthetic, np.float64)
    if min(len(real), len(synthetic)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} tiles in each set")
    precision = _inside(synthetic, real, _knn_radii(real, k)).mean()
    recall = _inside(real, synthetic, _knn_radii(synthetic, k)).mean()
    return PrecisionRecall(float(precision), float(recall), k, len(real), len(synthetic))
