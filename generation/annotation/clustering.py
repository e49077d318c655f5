"""Morphology clusters (pure): standardise embeddings, K-means, assign new tiles later."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans


@dataclass(frozen=True)
class FittedClusters:
    """Everything needed to assign a new embedding to a cluster, as plain arrays."""

    mean: np.ndarray  # (D,) scaler mean
    scale: np.ndarray  # (D,) scaler std (1 where a dimension is constant)
    centres: np.ndarray  # (k, D) in standardised space
    inertia: float

    @property
    def k(self) -> int:
        return len(self.centres)

    def assign(self, embeddings: np.ndarray) -> np.ndarray:
        """Index of the nearest centre for each row of (N, D) embeddings."""
        z = (np.asarray(embeddings, np.float64) - self.mean) / self.scale
        # |z - c|^2 = |z|^2 - 2 z.c + |c|^2; |z|^2 is the same for every centre
        scores = z @ self.centres.T * -2 + (self.centres**2).sum(axis=1)
        return scores.argmin(axis=1)


def fit_clusters(
    embeddings: np.ndarray, k: int = 33, seed: int = 0, n_init: int = 10
) -> FittedClusters:
    """K-means on standardised (N, D) embeddings; labels are never seen."""
    x = np.asarray(embeddings, np.float64)
    if len(x) < k:
        raise ValueError(f"{len(x)} accepted tiles cannot make {k} clusters; need at least {k}")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-12] = 1.0
    model = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit((x - mean) / scale)
    return FittedClusters(mean, scale, model.cluster_centers_, float(model.inertia_))
