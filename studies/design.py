"""Which cases a reader reads, and in what order: pure functions over (id, kind, label) tuples.

No Django here. The model layer passes in the pool and a seed and records both; the same
pool and seed always give the same cases in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

KINDS = ("real", "synthetic")
LABELS = (0, 1)  # healthy, tumour


class DesignError(ValueError):
    """A study design the cohort cannot satisfy; the message names the stratum and counts."""


@dataclass(frozen=True)
class PoolCase:
    id: int
    kind: str  # real | synthetic
    label: int  # 0 healthy, 1 tumour


@dataclass(frozen=True)
class Design:
    """How cases are drawn: n per reader, real:synthetic ratio, label balance inside each kind."""

    n: int
    ratio_real: int = 1
    ratio_synthetic: int = 1
    stratify_by_label: bool = True

    def _synthetic_share(self) -> float:
        total_ratio = self.ratio_real + self.ratio_synthetic
        if total_ratio <= 0:
            raise DesignError("real:synthetic ratio must not be 0:0")
        return self.n * self.ratio_synthetic / total_ratio

    def quotas(self, rng: np.random.Generator) -> dict[tuple[str, int | None], int]:
        """Cases per (kind, label) stratum, or per (kind, None) without label stratification.

        A fractional split (5 cases at 1:1) and an odd split inside a kind (3 synthetic into
        two labels) give the extra case by a seeded draw, so no kind or label is favoured
        across readers.
        """
        exact = self._synthetic_share()
        synthetic = int(np.floor(exact)) + int(rng.random() < exact - np.floor(exact))
        per_kind = {"real": self.n - synthetic, "synthetic": synthetic}
        quotas: dict[tuple[str, int | None], int] = {}
        for kind, count in per_kind.items():
            if not self.stratify_by_label:
                quotas[(kind, None)] = count
                continue
            healthy = count // 2
            if count % 2 and rng.integers(0, 2) == 0:
                healthy += 1
            quotas[(kind, 0)] = healthy
            quotas[(kind, 1)] = count - healthy
        return quotas

    def largest_quotas(self) -> dict[tuple[str, int | None], int]:
        """The most cases any seed can ask of each stratum (extra cases rounded up)."""
        exact = self._synthetic_share()
        per_kind = {"real": int(np.ceil(self.n - exact)), "synthetic": int(np.ceil(exact))}
        if not self.stratify_by_label:
            return {(kind, None): count for kind, count in per_kind.items()}
        return {(kind, label): (count + 1) // 2 for kind, count in per_kind.items()
                for label in LABELS}  # fmt: skip


def check_capacity(pool: Sequence[PoolCase], design: Design) -> None:
    """DesignError unless every seed's draw fits the pool: a per-reader study draws with a
    seed per reader, so passing with one seed is not enough."""
    if design.n <= 0:
        return
    strata = _strata(pool, design.stratify_by_label)
    for key, quota in design.largest_quotas().items():
        _need(key, quota, len(strata.get(key, [])))


def _need(key: tuple[str, int | None], quota: int, available: int) -> None:
    if quota > available:
        kind, label = key
        stratum = kind if label is None else f"{kind} {('healthy', 'tumour')[label]}"
        raise DesignError(
            f"the cohort has {available} {stratum} tiles available, the design needs up to "
            f"{quota}; lower the cases or change the ratio"
        )


def _strata(pool: Sequence[PoolCase], by_label: bool) -> dict[tuple[str, int | None], list[int]]:
    strata: dict[tuple[str, int | None], list[int]] = {}
    for case in sorted(pool, key=lambda c: c.id):
        strata.setdefault((case.kind, case.label if by_label else None), []).append(case.id)
    return strata


def draw(pool: Sequence[PoolCase], design: Design, seed: int) -> list[int]:
    """Draw design.n case ids from the pool by the design's quotas, in a seeded random order."""
    if design.n <= 0:
        return []
    rng = np.random.default_rng(seed)
    quotas = design.quotas(rng)
    strata = _strata(pool, design.stratify_by_label)
    chosen: list[int] = []
    for key, quota in quotas.items():
        available = strata.get(key, [])
        _need(key, quota, len(available))
        picks = rng.choice(len(available), size=quota, replace=False)
        chosen.extend(available[i] for i in sorted(picks))
    return [chosen[i] for i in rng.permutation(len(chosen))]


def shuffle(case_ids: Sequence[int], seed: int) -> list[int]:
    """A reader's own order of a shared case set."""
    rng = np.random.default_rng(seed)
    ordered = sorted(case_ids)
    return [ordered[i] for i in rng.permutation(len(ordered))]


def reader_seed(study_seed: int, reader_id: int) -> int:
    """A reader's seed, derived from the study's so that it can be recomputed and audited."""
    return int(np.random.SeedSequence([study_seed, reader_id]).generate_state(1, np.uint64)[0] >> 1)
