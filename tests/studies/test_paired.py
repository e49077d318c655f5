"""The paired (2AFC) design's pure parts: pairs matched on label and cluster, balanced sides,
and the statistics (per-reader Wilson, MRMC reader average, equivalence around 0.5)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from histostudy import mrmc
from studies.paired import PairCase, PairingError, analyse_pairs, draw_pairs, sides


def pool(per_cluster: int = 3, clusters: int = 3, odd_synthetic: int = 0) -> list[PairCase]:
    cases, next_id = [], 0
    for label in (0, 1):
        for cluster in range(clusters):
            for kind in ("real", "synthetic"):
                extra = odd_synthetic if kind == "synthetic" and cluster == 0 else 0
                for _ in range(per_cluster + extra):
                    cases.append(PairCase(next_id, kind, label, cluster))
                    next_id += 1
    return cases


def test_pairs_match_label_and_cluster_use_each_tile_once_and_balance_sides():
    cases = pool(odd_synthetic=2)
    by_id = {c.id: c for c in cases}
    for seed in range(20):
        pairs = draw_pairs(cases, 15, seed)
        assert len(pairs) == 15
        used = [p.real for p in pairs] + [p.synthetic for p in pairs]
        assert len(used) == len(set(used))  # every tile at most once
        for p in pairs:
            real, synthetic = by_id[p.real], by_id[p.synthetic]
            assert (real.kind, synthetic.kind) == ("real", "synthetic")
            assert real.label == synthetic.label == p.label
            assert p.matched_on == "cluster" and real.cluster == synthetic.cluster
        labels = Counter(p.label for p in pairs)
        assert abs(labels[0] - labels[1]) == 1
        left = Counter(p.synthetic_side for p in pairs)
        assert abs(left["left"] - left["right"]) == 1
    # a few pairs come from every cluster across seeds, not from the first clusters only
    clusters = Counter(
        by_id[p.real].cluster for seed in range(30) for p in draw_pairs(cases, 4, seed)
    )
    assert set(clusters) == {0, 1, 2}
    assert draw_pairs(cases, 15, 3) == draw_pairs(cases, 15, 3)
    assert draw_pairs(cases, 15, 3) != draw_pairs(cases, 15, 4)


def test_without_a_cluster_partner_a_tile_pairs_within_its_label():
    cases = [PairCase(0, "real", 0, 0), PairCase(1, "synthetic", 0, 1),
             PairCase(2, "real", 1, 2), PairCase(3, "synthetic", 1, 2)]  # fmt: skip
    pairs = {p.label: p for p in draw_pairs(cases, 2, 0)}
    assert (pairs[0].real, pairs[0].synthetic, pairs[0].matched_on) == (0, 1, "label")
    assert (pairs[1].real, pairs[1].synthetic, pairs[1].matched_on) == (2, 3, "cluster")
    with pytest.raises(PairingError, match="1 healthy pairs, the design needs 2"):
        draw_pairs(cases, 4, 0)


def test_sides_are_half_left_and_random_in_order():
    rng = np.random.default_rng(0)
    runs = [sides(10, rng) for _ in range(200)]
    assert all(Counter(r) == {"left": 5, "right": 5} for r in runs)
    assert len({tuple(r) for r in runs}) > 100


def test_per_reader_wilson_and_the_reader_average_with_its_mrmc_interval():
    rng = np.random.default_rng(1)
    skill = {"a": 0.55, "b": 0.7, "c": 0.6, "d": 0.5}
    answers = [(r, f"p{k}", bool(rng.random() < p)) for r, p in skill.items() for k in range(40)]
    results = analyse_pairs(answers)
    for reader in skill:
        right = sum(ok for r, _, ok in answers if r == reader)
        low, high = proportion_confint(right, 40, method="wilson")
        got = results.readers[reader]
        assert (got.value, got.low, got.high) == pytest.approx((right / 40, low, high))
    # the reader average is the mean of the readers' accuracies, its interval the OR/Hillis one
    assert results.average.estimate == pytest.approx(
        np.mean([results.readers[r].value for r in skill])
    )
    ratings = np.array([[[float(ok) for r2, _, ok in answers if r2 == r] for r in sorted(skill)]])
    direct = mrmc.analyse(
        mrmc.Design(ratings, np.ones(40, int), ("m",), tuple(sorted(skill)),
                    tuple(f"p{k}" for k in range(40))),
        "sensitivity",
    ).modalities[0]  # fmt: skip
    assert (results.average.ci_low, results.average.ci_high) == pytest.approx(
        (direct.ci_low, direct.ci_high)
    )
    assert results.equivalence is not None and not results.problem


def test_readers_at_chance_are_called_equivalent_at_20_readers_x_100_pairs():
    """The issue's check: simulated readers at accuracy 0.5, with a reader effect and a pair
    effect, get the verdict "indistinguishable within 0.1" in at least 80% of studies."""
    rng = np.random.default_rng(2026)
    verdicts = []
    for _ in range(200):
        reader = rng.normal(0, 0.3, 20)  # on the logit scale, around 0
        pair = rng.normal(0, 0.3, 100)
        p = 1 / (1 + np.exp(-(reader[:, None] + pair[None, :])))
        right = rng.random((20, 100)) < p
        answers = [(f"r{j}", f"p{k}", bool(right[j, k])) for j in range(20) for k in range(100)]
        verdicts.append(analyse_pairs(answers, 0.10, 0.05).equivalence.equivalent)
    assert np.mean(verdicts) >= 0.8


def test_one_reader_has_no_reader_average():
    results = analyse_pairs([("solo", "p1", True), ("solo", "p2", False)])
    assert results.average is None and "two readers" in results.problem
    assert results.readers["solo"].value == 0.5
