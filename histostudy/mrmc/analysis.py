"""The Obuchowski-Rockette analysis with Hillis degrees of freedom: per modality the reader
average with its interval, the F test of equal modalities, pairwise differences, and the OR
variance components."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats

from histostudy.mrmc.covariance import check_method, covariance_matrix, figures_of_merit
from histostudy.mrmc.data import Design, MrmcError


@dataclass(frozen=True)
class Components:
    """The OR variance components: reader, treatment-by-reader, the error covariances (Cov1:
    same reader, other modality; Cov2: same modality, other reader; Cov3: both other) and the
    error variance, with the mean squares they come from."""

    var_r: float
    var_tr: float | None  # one modality: not separable from var_r
    cov1: float | None
    cov2: float
    cov3: float | None
    var_e: float
    ms_t: float | None
    ms_r: float
    ms_tr: float | None


@dataclass(frozen=True)
class Estimate:
    """A reader-averaged figure of merit (or a difference) with its interval."""

    name: str
    estimate: float
    se: float
    df: float
    ci_low: float
    ci_high: float
    t: float | None = None  # differences: the t statistic and its two-sided p-value
    p: float | None = None

    @property
    def value(self) -> float:  # the names a Proportion uses, for templates showing either
        return self.estimate

    @property
    def low(self) -> float:
        return self.ci_low

    @property
    def high(self) -> float:
        return self.ci_high


@dataclass(frozen=True)
class Analysis:
    metric: str
    covariance: str
    confidence: float
    modalities: list[Estimate]
    readers: tuple[str, ...]
    foms: np.ndarray  # (modalities, readers)
    components: Components
    f: float | None = None  # equal modalities: F, its degrees of freedom and p-value
    df1: int | None = None
    df2: float | None = None
    p: float | None = None
    differences: list[Estimate] = field(default_factory=list)

    def as_dict(self) -> dict:
        """The JSON form: modalities, difference (two modalities) or differences, components."""
        out = {
            "metric": self.metric,
            "covariance": self.covariance,
            "confidence": self.confidence,
            "readers": list(self.readers),
            "modalities": [
                {**asdict(m), "foms": dict(zip(self.readers, row.tolist(), strict=True))}
                for m, row in zip(self.modalities, self.foms, strict=True)
            ],
            "components": asdict(self.components),
        }
        if self.f is not None:
            out["f_test"] = {"f": self.f, "df1": self.df1, "df2": self.df2, "p": self.p}
            out["differences"] = [asdict(d) for d in self.differences]
        if len(self.differences) == 1:
            d = self.differences[0]
            out["difference"] = {
                "name": d.name, "estimate": d.estimate, "se": d.se, "ci_low": d.ci_low,
                "ci_high": d.ci_high, "t": d.t, "f": self.f, "df2": self.df2, "p": self.p,
            }  # fmt: skip
        return out


# --- the Obuchowski-Rockette analysis -------------------------------------------------------------


def _averages(cov: np.ndarray, t: int, r: int) -> tuple[float, float, float, float]:
    """Var, Cov1, Cov2, Cov3: the covariance matrix averaged over same/other modality x reader."""
    modality = np.repeat(np.arange(t), r)
    reader = np.tile(np.arange(r), t)
    same_m = modality[:, None] == modality[None, :]
    same_r = reader[:, None] == reader[None, :]

    def mean(mask: np.ndarray) -> float:
        return float(cov[mask].mean()) if mask.any() else math.nan

    return (
        mean(same_m & same_r),
        mean(~same_m & same_r),
        mean(same_m & ~same_r),
        mean(~same_m & ~same_r),
    )


def _interval(
    name: str,
    estimate: float,
    variance: float,
    df: float,
    confidence: float,
    test: bool = False,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> Estimate:
    """Estimate +- t(df) SE, clipped to what the figure can be. No variance (every reader and
    case alike, e.g. all AUCs 1) is no evidence of certainty: SE, interval and test are nan."""
    if not variance > 0:
        nan = math.nan
        return Estimate(name, estimate, nan, float(df), nan, nan, nan if test else None,
                        nan if test else None)  # fmt: skip
    se = math.sqrt(variance)
    q = (
        stats.t.ppf(0.5 + confidence / 2, df)
        if math.isfinite(df)
        else stats.norm.ppf(0.5 + confidence / 2)
    )
    t_stat = p = None
    if test:
        t_stat = estimate / se
        dist = stats.t(df) if math.isfinite(df) else stats.norm()
        p = float(2 * dist.sf(abs(t_stat)))
    low = float(max(bounds[0], estimate - q * se))
    high = float(min(bounds[1], estimate + q * se))
    return Estimate(name, estimate, se, float(df), low, high, t_stat, p)


def _hillis_df(denominator: float, ms: float, df_ms: int) -> float:
    """Hillis (2007): (MS + r max(cov, 0))^2 / (MS^2 / df); infinite where MS is 0."""
    return denominator**2 / (ms**2 / df_ms) if ms > 0 else math.inf


def analyse(
    design: Design,
    metric: str = "auc",
    covariance: str = "jackknife",
    confidence: float = 0.95,
) -> Analysis:
    """Random readers and random cases: per modality the reader average with its interval, and
    with several modalities the F test of equal means and every pairwise difference."""
    check_method(metric, covariance)
    if not 0 < confidence < 1:
        raise MrmcError(f"confidence must be between 0 and 1, got {confidence}")
    t, r, _ = design.ratings.shape
    if r < 2:
        raise MrmcError(f"random-reader analysis needs at least two readers, got {r}")
    cov = covariance_matrix(design, metric, covariance)
    foms = figures_of_merit(design, metric)
    var_e, cov1, cov2, cov3 = _averages(cov, t, r)
    mean_m, mean_r, grand = foms.mean(1), foms.mean(0), foms.mean()

    modalities = []
    for i, name in enumerate(design.modalities):
        ms_r_i = float(((foms[i] - mean_m[i]) ** 2).sum() / (r - 1))
        block = cov[i * r : (i + 1) * r, i * r : (i + 1) * r]
        cov2_i = float(block[~np.eye(r, dtype=bool)].mean())
        denominator = ms_r_i + r * max(cov2_i, 0.0)
        df = _hillis_df(denominator, ms_r_i, r - 1)
        modalities.append(_interval(name, float(mean_m[i]), denominator / r, df, confidence))

    ms_r = float(t * ((mean_r - grand) ** 2).sum() / (r - 1))
    if t == 1:
        components = Components(ms_r - var_e + cov2, None, None, cov2, None, var_e, None, ms_r,
                                None)  # fmt: skip
        return Analysis(metric, covariance, confidence, modalities, design.readers, foms,
                        components)  # fmt: skip

    ms_t = float(r * ((mean_m - grand) ** 2).sum() / (t - 1))
    residual = foms - mean_m[:, None] - mean_r[None, :] + grand
    ms_tr = float((residual**2).sum() / ((t - 1) * (r - 1)))
    var_tr = ms_tr - var_e + cov1 + cov2 - cov3
    var_r = (ms_r - var_e - (t - 1) * cov1 + cov2 + (t - 1) * cov3 - var_tr) / t
    components = Components(var_r, var_tr, cov1, cov2, cov3, var_e, ms_t, ms_r, ms_tr)
    denominator = ms_tr + r * max(cov2 - cov3, 0.0)
    df2 = _hillis_df(denominator, ms_tr, (t - 1) * (r - 1))
    if denominator > 0:
        f = ms_t / denominator
        dist = stats.f(t - 1, df2) if math.isfinite(df2) else stats.chi2(t - 1)
        p = float(dist.sf(f if math.isfinite(df2) else f * (t - 1)))
    else:  # identical modalities, or no variance at all: nothing to test
        f, p = math.nan, math.nan
    differences = [
        _interval(f"{design.modalities[a]} - {design.modalities[b]}",
                  float(mean_m[a] - mean_m[b]), 2 * denominator / r, df2, confidence, test=True,
                  bounds=(-1.0, 1.0))
        for a in range(t) for b in range(a + 1, t)
    ]  # fmt: skip
    return Analysis(metric, covariance, confidence, modalities, design.readers, foms,
                    components, f, t - 1, df2, p, differences)  # fmt: skip
