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

    def quotas(self, rng: np.random.Generator) -> dict[tuple[str, int | None], int]:
        """Cases per (kind, label) stratum, or per (kind, None) without label stratification.

        An odd split (7 synthetic into two labels) gives the extra case to a label chosen by
        the seeded generator, so no label is favoured across readers.
        """
        total_ratio = self.ratio_real + self.ratio_synthetic
        if total_ratio <= 0:
            raise DesignError("real:synthetic ratio must not be 0:0")
        synthetic = round(self.n * self.ratio_synthetic / total_ratio)
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
        if quota > len(available):
            kind, label = key
            stratum = kind if label is None else f"{kind} {('healthy', 'tumour')[label]}"
            raise DesignError(
                f"the cohort has {len(available)} {stratum} tiles available, "
                f"the design needs {quota}; lower the cases or change the ratio"
            )
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
