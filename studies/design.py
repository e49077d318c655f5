"""Which cases a reader reads, and in what order: pure functions over (id, kind, label, arm)
tuples.

No Django here. The model layer passes in the pool and a seed and records both; the same
pool and seed always give the same cases in the same order.

A study with several arms (cohorts of different generators or prompt schemes) shares its real
tiles between the arms: the synthetic quota is split evenly across the arms (an extra case by a
seeded draw), labels balanced inside each arm, and every reader reads all arms interleaved in
one seeded order. With one arm the draw is exactly that of a one-cohort study.
"""

from __future__ import annotations

import dataclasses
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
    arm: int = 0  # synthetic cases: the index of their arm; real cases serve every arm


Stratum = tuple[str, int | None, int | None]  # kind, label (None: not stratified), arm


@dataclass(frozen=True)
class Design:
    """How cases are drawn: n per reader, real:synthetic ratio, label balance inside each kind."""

    n: int
    ratio_real: int = 1
    ratio_synthetic: int = 1
    stratify_by_label: bool = True
    arms: int = 1  # the synthetic quota is split evenly across this many arms

    def _synthetic_share(self) -> float:
        total_ratio = self.ratio_real + self.ratio_synthetic
        if total_ratio <= 0:
            raise DesignError("real:synthetic ratio must not be 0:0")
        return self.n * self.ratio_synthetic / total_ratio

    def quotas(self, rng: np.random.Generator) -> dict[Stratum, int]:
        """Cases per (kind, label, arm) stratum; label None without label stratification, arm
        None for real cases and for a one-arm study.

        A fractional split (5 cases at 1:1), an uneven split across arms and an odd split
        inside a kind (3 synthetic into two labels) give the extra case by a seeded draw, so
        no kind, arm or label is favoured across readers.
        """
        if self.arms < 1:
            raise DesignError(f"a study needs at least one arm, got {self.arms}")
        exact = self._synthetic_share()
        synthetic = int(np.floor(exact)) + int(rng.random() < exact - np.floor(exact))
        quotas: dict[Stratum, int] = {}
        self._by_label(quotas, "real", self.n - synthetic, None, rng)
        if self.arms == 1:
            self._by_label(quotas, "synthetic", synthetic, None, rng)
            return quotas
        base, extra = divmod(synthetic, self.arms)
        lucky = set(rng.permutation(self.arms)[:extra].tolist())
        for arm in range(self.arms):
            self._by_label(quotas, "synthetic", base + (arm in lucky), arm, rng)
        return quotas

    def _by_label(self, quotas: dict[Stratum, int], kind: str, count: int, arm: int | None,
                  rng: np.random.Generator) -> None:  # fmt: skip
        if not self.stratify_by_label:
            quotas[(kind, None, arm)] = count
            return
        healthy = count // 2
        if count % 2 and rng.integers(0, 2) == 0:
            healthy += 1
        quotas[(kind, 0, arm)] = healthy
        quotas[(kind, 1, arm)] = count - healthy

    def largest_quotas(self) -> dict[Stratum, int]:
        """The most cases any seed can ask of each stratum (extra cases rounded up)."""
        exact = self._synthetic_share()
        real = int(np.ceil(self.n - exact))
        synthetic = int(np.ceil(exact))
        per_arm = -(-synthetic // self.arms)
        arms: tuple[int | None, ...] = (None,) if self.arms == 1 else tuple(range(self.arms))
        kinds = [("real", real, None)] + [("synthetic", per_arm, arm) for arm in arms]
        if not self.stratify_by_label:
            return {(kind, None, arm): count for kind, count, arm in kinds}
        return {(kind, label, arm): (count + 1) // 2 for kind, count, arm in kinds
                for label in LABELS}  # fmt: skip


def check_capacity(pool: Sequence[PoolCase], design: Design) -> None:
    """DesignError unless every seed's draw fits the pool: a per-reader study draws with a
    seed per reader, so passing with one seed is not enough."""
    if design.n <= 0:
        return
    strata = _strata(pool, design)
    for key, quota in design.largest_quotas().items():
        _need(key, quota, len(strata.get(key, [])))


def largest_fitting(pool: Sequence[PoolCase], design: Design) -> int:
    """The most cases per reader that fit the pool with the design's ratio, label balance and
    arms (0 where not even one does): what to offer when a design does not fit."""
    n = design.n
    while n > 0:
        try:
            check_capacity(pool, dataclasses.replace(design, n=n))
        except DesignError:
            n -= 1
        else:
            return n
    return 0


def _need(key: Stratum, quota: int, available: int) -> None:
    if quota > available:
        kind, label, arm = key
        stratum = kind if label is None else f"{kind} {('healthy', 'tumour')[label]}"
        tiles = "tiles" if arm is None else f"tiles of arm {arm + 1}"
        raise DesignError(
            f"the cohort has {available} {stratum} {tiles} available, the design needs up to "
            f"{quota}; lower the cases or change the ratio"
        )


def _strata(pool: Sequence[PoolCase], design: Design) -> dict[Stratum, list[int]]:
    strata: dict[Stratum, list[int]] = {}
    for case in sorted(pool, key=lambda c: c.id):
        label = case.label if design.stratify_by_label else None
        arm = case.arm if case.kind == "synthetic" and design.arms > 1 else None
        strata.setdefault((case.kind, label, arm), []).append(case.id)
    return strata


def draw(pool: Sequence[PoolCase], design: Design, seed: int) -> list[int]:
    """Draw design.n case ids from the pool by the design's quotas, in a seeded random order."""
    if design.n <= 0:
        return []
    rng = np.random.default_rng(seed)
    quotas = design.quotas(rng)
    strata = _strata(pool, design)
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
