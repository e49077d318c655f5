"""Figures of merit per modality x reader and their case-sampling covariance matrix: the
jackknife over cases, DeLong's structural components, or the unbiased U-statistic estimator."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from histostudy.mrmc.data import COVARIANCES, METRICS, Design, MrmcError

# --- figures of merit and their case covariances -------------------------------------------------


def _kernel(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """(len(pos), len(neg)) Mann-Whitney kernel: 1 where the positive rates higher, 1/2 on ties."""
    return (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])


@dataclass
class _Cell:
    """One modality x reader: which cases it read, with the pieces every estimator needs."""

    pos: np.ndarray  # case indices of positives read
    neg: np.ndarray
    fom: float
    kernel: np.ndarray | None  # AUC: (pos, neg) kernel
    counted: np.ndarray | None = None  # sensitivity, specificity, accuracy: the cases counted
    values: np.ndarray | None = None  # and the 0/1 outcome of each


def _cell(ratings: np.ndarray, truth: np.ndarray, metric: str, where: str) -> _Cell:
    read = ~np.isnan(ratings)
    pos = np.flatnonzero(read & (truth == 1))
    neg = np.flatnonzero(read & (truth == 0))
    if metric == "auc":
        if len(pos) < 2 or len(neg) < 2:  # with one, leaving it out cannot show its variance
            raise MrmcError(
                f"{where}: the AUC needs two positive and two negative cases read, got "
                f"{len(pos)} and {len(neg)}"
            )
        kernel = _kernel(ratings[pos], ratings[neg])
        return _Cell(pos, neg, float(kernel.mean()), kernel)
    calls = ratings[read]
    if not np.isin(calls, (0, 1)).all():
        raise MrmcError(f"{where}: {metric} needs calls of 0 or 1 as ratings")
    counted = {"sensitivity": pos, "specificity": neg, "accuracy": np.flatnonzero(read)}[metric]
    if len(counted) < 2:
        kind = {"sensitivity": "positive ", "specificity": "negative "}.get(metric, "")
        raise MrmcError(f"{where}: {metric} needs two {kind}cases read, got {len(counted)}")
    values = (ratings[counted] == truth[counted]).astype(float)  # the call was right
    return _Cell(pos, neg, float(values.mean()), None, counted, values)


def _cells(design: Design, metric: str) -> list[_Cell]:
    t, r, _ = design.ratings.shape
    return [
        _cell(design.ratings[i, j], design.truth, metric,
              f"reader {design.readers[j]!r} in modality {design.modalities[i]!r}")
        for i in range(t) for j in range(r)
    ]  # fmt: skip


def figures_of_merit(design: Design, metric: str = "auc") -> np.ndarray:
    """(modalities, readers): each reader's figure of merit over the cases it read."""
    t, r, _ = design.ratings.shape
    return np.array([cell.fom for cell in _cells(design, metric)]).reshape(t, r)


def _jackknife(cells: list[_Cell], n_cases: int) -> np.ndarray:
    """Leave-one-case-out figures of merit: (cells, cases); a case a cell did not read leaves
    it unchanged."""
    out = np.empty((len(cells), n_cases))
    for a, cell in enumerate(cells):
        out[a] = cell.fom
        if cell.kernel is not None:
            m, n = cell.kernel.shape
            total = cell.kernel.sum()
            if m > 1:
                out[a, cell.pos] = (total - cell.kernel.sum(1)) / ((m - 1) * n)
            if n > 1:
                out[a, cell.neg] = (total - cell.kernel.sum(0)) / (m * (n - 1))
        elif len(cell.values) > 1:
            k = len(cell.values)
            out[a, cell.counted] = (cell.values.sum() - cell.values) / (k - 1)
    return out


def covariance_matrix(design: Design, metric: str = "auc", method: str = "jackknife") -> np.ndarray:
    """The (t*r, t*r) case-sampling covariance of the figures of merit, modality-major."""
    check_method(metric, method)
    cells = _cells(design, metric)
    if method == "jackknife":
        c = len(design.cases)
        pseudo = _jackknife(cells, c)
        centred = pseudo - pseudo.mean(axis=1, keepdims=True)
        return (c - 1) / c * centred @ centred.T
    n = len(cells)
    cov = np.empty((n, n))
    for a in range(n):
        for b in range(a + 1):
            pair = _pair_delong if method == "delong" else _pair_unbiased
            cov[a, b] = cov[b, a] = pair(cells[a], cells[b])
    return cov


def _shared(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions in x and in y of the case indices both hold."""
    _, ix, iy = np.intersect1d(x, y, assume_unique=True, return_indices=True)
    return ix, iy


def _mean_cov(u: np.ndarray, v: np.ndarray, iu: np.ndarray, iv: np.ndarray) -> float:
    """Covariance of the means of u and v (per-case values over their own cases), from the
    sample covariance over the cases both have: k * s_uv / (len(u) len(v))."""
    k = len(iu)
    if k < 2:
        return 0.0
    a, b = u[iu], v[iv]
    s = float(((a - a.mean()) * (b - b.mean())).sum() / (k - 1))
    return k * s / (len(u) * len(v))


def _pair_delong(x: _Cell, y: _Cell) -> float:
    if x.kernel is None or y.kernel is None:  # a proportion: the per-case outcomes
        ix, iy = _shared(x.counted, y.counted)
        return _mean_cov(x.values, y.values, ix, iy)
    px, py = _shared(x.pos, y.pos)
    nx, ny = _shared(x.neg, y.neg)
    return _mean_cov(x.kernel.mean(1), y.kernel.mean(1), px, py) + _mean_cov(
        x.kernel.mean(0), y.kernel.mean(0), nx, ny
    )


def _pair_unbiased(x: _Cell, y: _Cell) -> float:
    """Gallas et al.'s unbiased estimate of Cov(A_x, A_y): the product of the two AUCs less an
    unbiased estimate of the product of their means, from the kernel pairs that share no case."""
    if x.kernel is None or y.kernel is None:
        raise MrmcError("the unbiased covariance estimator is defined for the AUC only")
    px, py = _shared(x.pos, y.pos)
    nx, ny = _shared(x.neg, y.neg)
    sx, sy = x.kernel.sum(), y.kernel.sum()
    rows = float(x.kernel.sum(1)[px] @ y.kernel.sum(1)[py])
    cols = float(x.kernel.sum(0)[nx] @ y.kernel.sum(0)[ny])
    both = float((x.kernel[np.ix_(px, nx)] * y.kernel[np.ix_(py, ny)]).sum())
    size = x.kernel.size * y.kernel.size
    independent = (len(x.pos) * len(y.pos) - len(px)) * (len(x.neg) * len(y.neg) - len(nx))
    if independent <= 0:
        raise MrmcError("the unbiased covariance needs two positive and two negative cases")
    return float(sx * sy / size - (sx * sy - rows - cols + both) / independent)


def check_method(metric: str, method: str) -> None:
    """MrmcError unless the metric and covariance method exist and go together."""
    if metric not in METRICS:
        raise MrmcError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    if method not in COVARIANCES:
        raise MrmcError(
            f"unknown covariance method {method!r}; expected one of {', '.join(COVARIANCES)}"
        )
    if method == "unbiased" and metric != "auc":
        raise MrmcError("the unbiased covariance estimator is defined for the AUC only")
