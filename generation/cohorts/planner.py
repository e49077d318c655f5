"""Which real tiles a cohort pairs with synthetic ones: pure functions over candidates.

No Django here. The storage side (generation.cohorts.storage) passes in the accepted, annotated
real tiles outside the generator's training set and a seed, and records the plan; the same
candidates and seed always give the same plan.

A cohort of `size` holds half of each label; inside a label, tiles are drawn from each
morphology cluster in proportion to its size (largest remainder), and each picked real tile
gets one synthetic counterpart with the same label, cluster and prompt and a seed of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LABEL_NAMES = {0: "healthy", 1: "tumour"}


class PlanError(ValueError):
    """The candidates cannot fill the cohort; the message names the stratum and the counts."""


@dataclass(frozen=True)
class Candidate:
    tile_id: int
    label: int  # 0 healthy, 1 tumour
    cluster: int
    prompt: str  # under the generator's scheme


def allocate(counts: dict[int, int], total: int) -> dict[int, int]:
    """Split `total` across strata in proportion to their sizes (largest remainder), capped."""
    available = sum(counts.values())
    if total > available:
        raise PlanError(f"asked for {total} tiles but only {available} are available")
    exact = {k: total * n / available for k, n in counts.items()}
    share = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: (share[k] - exact[k], k))[: total - sum(share.values())]:
        share[k] += 1
    return share


def plan(candidates: Sequence[Candidate], size: int, seed: int) -> list[dict]:
    """One plan entry a position: {position, tile_id, label, cluster, prompt, seed}, healthy
    positions first, each label's clusters in order. Candidates come in a fixed order (the
    caller sorts them by tile id); PlanError when a label has no candidate or too few."""
    rng = np.random.default_rng(seed)
    picked: list[Candidate] = []
    for label, wanted in ((0, size // 2), (1, size - size // 2)):
        by_cluster: dict[int, list[Candidate]] = {}
        for c in candidates:
            if c.label == label:
                by_cluster.setdefault(c.cluster, []).append(c)
        if not by_cluster:
            raise PlanError(f"empty stratum: no {LABEL_NAMES[label]} tiles to draw from")
        try:
            share = allocate({k: len(v) for k, v in by_cluster.items()}, wanted)
        except PlanError as exc:
            raise PlanError(f"{LABEL_NAMES[label]} tiles: {exc}") from exc
        for cluster in sorted(by_cluster):
            members = by_cluster[cluster]
            drawn = rng.choice(len(members), share[cluster], replace=False)
            picked.extend(members[int(i)] for i in drawn)
    seeds = np.random.SeedSequence(seed).generate_state(len(picked), dtype=np.uint32).tolist()
    return [
        {
            "position": i,
            "tile_id": c.tile_id,
            "label": c.label,
            "cluster": c.cluster,
            "prompt": c.prompt,
            "seed": int(s),
        }
        for i, (c, s) in enumerate(zip(picked, seeds, strict=True))
    ]
