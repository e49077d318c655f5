"""The paired (two-alternative forced choice) design, pure: which real and synthetic tiles make a
pair, which side each goes on, and what the answers say. No Django here.

A pair is a real and a synthetic tile of the same label and, where the pool allows, the same
morphology cluster; the reader says which one is synthetic. Chance is exactly 0.5 whatever a
reader's bias, so accuracy compares across readers and studies. Each tile is used in one pair
at most; sides are balanced for each draw (half the pairs with the synthetic tile on the
left, an odd one by a seeded draw: a reader's own sides of shared pairs come from `sides`
with the reader's seed), and the same pool and seed always give the same pairs. Pairs matched
on cluster come first, so a synthetic tile of a morphology with no real counterpart is paired
only when the cluster-matched ones run out: a study that must include those should draw its
synthetic tiles first (not yet offered).

studies.models.pairing draws a paired study's pairs and each reader's sides with it;
studies.paired_results reads a study's answers into analyse_pairs for the dashboard.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from histostudy import mrmc
from histostudy import statistics as st

SIDES = ("left", "right")


class PairingError(ValueError):
    """The pool cannot give the pairs asked for; the message says which label is short."""


@dataclass(frozen=True)
class PairCase:
    id: int
    kind: str  # real | synthetic
    label: int  # 0 healthy, 1 tumour
    cluster: int | None = None  # morphology cluster, where annotated


@dataclass(frozen=True)
class Pair:
    real: int
    synthetic: int
    label: int
    synthetic_side: str  # left | right
    matched_on: str  # "cluster" (label and cluster) or "label" (no tile of its cluster left)


def match(pool: Sequence[PairCase], rng: np.random.Generator) -> list[tuple[int, int, int, str]]:
    """(real id, synthetic id, label, matched on) for as many pairs as the pool makes: first
    within each label x cluster, then what is left within each label. Each tile once."""
    groups: dict[tuple[int, int | None], dict[str, list[int]]] = defaultdict(
        lambda: {"real": [], "synthetic": []}
    )
    for case in sorted(pool, key=lambda c: c.id):
        groups[(case.label, case.cluster)][case.kind].append(case.id)
    pairs: list[tuple[int, int, int, str]] = []
    leftover: dict[int, dict[str, list[int]]] = defaultdict(lambda: {"real": [], "synthetic": []})
    for (label, cluster), kinds in sorted(
        groups.items(), key=lambda g: (g[0][0], -1 if g[0][1] is None else g[0][1])
    ):
        real = [kinds["real"][i] for i in rng.permutation(len(kinds["real"]))]
        synthetic = [kinds["synthetic"][i] for i in rng.permutation(len(kinds["synthetic"]))]
        n = 0 if cluster is None else min(len(real), len(synthetic))
        pairs += [(r, s, label, "cluster") for r, s in zip(real[:n], synthetic[:n], strict=True)]
        leftover[label]["real"] += real[n:]
        leftover[label]["synthetic"] += synthetic[n:]
    for label, kinds in sorted(leftover.items()):
        real = [kinds["real"][i] for i in rng.permutation(len(kinds["real"]))]
        synthetic = [kinds["synthetic"][i] for i in rng.permutation(len(kinds["synthetic"]))]
        pairs += [(r, s, label, "label") for r, s in zip(real, synthetic, strict=False)]
    return pairs


def draw_pairs(pool: Sequence[PairCase], n: int, seed: int) -> list[Pair]:
    """n pairs, half of each label (an odd one by a seeded draw), cluster-matched pairs first,
    sides balanced, in a seeded order."""
    rng = np.random.default_rng(seed)
    by_label: dict[int, list[tuple[int, int, int, str]]] = defaultdict(list)
    for pair in match(pool, rng):
        by_label[pair[2]].append(pair)
    healthy = n // 2 + (n % 2 and int(rng.integers(0, 2)) == 0)
    chosen = []
    for label, quota in ((0, healthy), (1, n - healthy)):
        matched = by_label[label]
        shuffled = [matched[i] for i in rng.permutation(len(matched))]  # no cluster favoured
        found = sorted(shuffled, key=lambda p: p[3] != "cluster")  # cluster matches first
        if quota > len(found):
            name = ("healthy", "tumour")[label]
            raise PairingError(
                f"the pool makes {len(found)} {name} pairs, the design needs {quota}; lower "
                "the pairs or add tiles"
            )
        chosen += found[:quota]
    on_side = sides(n, rng)
    order = rng.permutation(n)
    return [
        Pair(chosen[i][0], chosen[i][1], chosen[i][2], on_side[k], chosen[i][3])
        for k, i in enumerate(order)
    ]


def sides(n: int, rng: np.random.Generator) -> list[str]:
    """The synthetic tile's side for n pairs: half left, half right (an odd one by a draw), in
    a random order; a reader's own sides of shared pairs come from their own seed."""
    left = n // 2 + (n % 2 and int(rng.integers(0, 2)) == 0)
    return [SIDES[int(i >= left)] for i in rng.permutation(n)]


@dataclass
class PairedResults:
    """Per reader: the share of pairs where they picked the synthetic tile, with its Wilson
    interval; the reader average with its MRMC interval (readers and pairs random) and the
    equivalence verdict around 0.5, the accuracy of a reader who cannot tell."""

    readers: dict[str, st.Proportion]
    average: mrmc.Estimate | None = None
    equivalence: mrmc.Equivalence | None = None
    problem: str = ""


def analyse_pairs(
    answers: Sequence[tuple[str, str, bool]], margin: float = 0.10, alpha: float = 0.05
) -> PairedResults:
    """answers: (reader, pair, picked the synthetic tile) for every answered pair."""
    correct: dict[str, list[bool]] = defaultdict(list)
    for reader, _, right in answers:
        correct[reader].append(bool(right))
    out = PairedResults(
        {r: st.proportion(sum(c), len(c), "wilson") for r, c in sorted(correct.items())}
    )
    readers = sorted(correct)
    pairs = sorted({pair for _, pair, _ in answers})
    if len(readers) < 2:
        out.problem = "the reader average needs two readers"
        return out
    ratings = np.full((1, len(readers), len(pairs)), np.nan)
    where_r = {r: j for j, r in enumerate(readers)}
    where_p = {p: k for k, p in enumerate(pairs)}
    for reader, pair, right in answers:
        ratings[0, where_r[reader], where_p[pair]] = float(right)
    # every pair is a "positive" case and a right pick a positive call: the reader-averaged
    # sensitivity is then the reader-averaged accuracy, with the OR/Hillis interval
    design = mrmc.Design(ratings, np.ones(len(pairs), int), ("paired",), tuple(readers),
                         tuple(pairs))  # fmt: skip
    try:
        out.average = mrmc.analyse(design, "sensitivity").modalities[0]
        out.equivalence = mrmc.equivalence(out.average, 0.5, margin, alpha)
    except mrmc.MrmcError as exc:
        out.problem = str(exc)
    return out
