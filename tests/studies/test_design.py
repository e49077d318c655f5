"""Case drawing is pure: the same pool and seed give the same cases; quotas hold exactly."""

from __future__ import annotations

from collections import Counter

import pytest

from studies.design import (
    Design,
    DesignError,
    PoolCase,
    check_capacity,
    draw,
    reader_seed,
    shuffle,
)


def pool(per_stratum: int = 10) -> list[PoolCase]:
    cases, next_id = [], 0
    for kind in ("real", "synthetic"):
        for label in (0, 1):
            for _ in range(per_stratum):
                cases.append(PoolCase(next_id, kind, label))
                next_id += 1
    return cases


def strata(ids: list[int], cases: list[PoolCase]) -> Counter:
    by_id = {c.id: c for c in cases}
    return Counter((by_id[i].kind, by_id[i].label) for i in ids)


def test_balanced_design_draws_equal_strata_without_repeats():
    cases = pool()
    ids = draw(cases, Design(20), seed=7)
    assert len(ids) == len(set(ids)) == 20
    assert strata(ids, cases) == {(k, lbl): 5 for k in ("real", "synthetic") for lbl in (0, 1)}


def test_same_seed_same_draw_and_order_other_seed_differs():
    cases = pool()
    assert draw(cases, Design(12), 3) == draw(list(reversed(cases)), Design(12), 3)
    assert draw(cases, Design(12), 3) != draw(cases, Design(12), 4)


def test_ratio_one_real_to_three_synthetic():
    cases = pool()
    counts = strata(draw(cases, Design(16, ratio_real=1, ratio_synthetic=3), 1), cases)
    assert counts[("real", 0)] + counts[("real", 1)] == 4
    assert counts[("synthetic", 0)] == counts[("synthetic", 1)] == 6


def test_odd_split_gives_the_extra_case_to_either_label_by_seed():
    cases = pool()
    extras = set()
    for seed in range(20):
        counts = strata(draw(cases, Design(6), seed), cases)  # 3 real, 3 synthetic
        assert counts[("real", 0)] + counts[("real", 1)] == 3
        extras.add(counts[("real", 0)])
    assert extras == {1, 2}


def test_without_label_stratification_only_kinds_are_balanced():
    cases = pool()
    counts = strata(draw(cases, Design(10, stratify_by_label=False), 5), cases)
    assert counts[("real", 0)] + counts[("real", 1)] == 5


def test_too_few_tiles_names_the_stratum_and_counts():
    with pytest.raises(DesignError, match="has 3 real healthy tiles available, the design needs"):
        draw(pool(3), Design(16), 0)
    with pytest.raises(DesignError, match="0:0"):
        draw(pool(), Design(4, 0, 0), 0)


def test_zero_cases_is_empty():
    assert draw(pool(), Design(0), 0) == []


def test_shuffle_and_reader_seed_are_deterministic_and_distinct():
    assert shuffle([5, 1, 3], 9) == shuffle([3, 5, 1], 9)
    assert sorted(shuffle(range(50), 9)) == list(range(50))
    assert reader_seed(1, 2) == reader_seed(1, 2) != reader_seed(1, 3)
    assert 0 <= reader_seed(2**62, 10**9) < 2**63


def test_capacity_covers_every_seed_not_just_one():
    """4 synthetic healthy and 3 synthetic tumour tiles: 7 synthetic fit one label split
    but not the other, so a per-reader study would fail for about half its readers."""
    cases = [PoolCase(i, "synthetic", 0) for i in range(4)]
    cases += [PoolCase(10 + i, "synthetic", 1) for i in range(3)]
    cases += [PoolCase(20 + i, "real", i % 2) for i in range(20)]
    design = Design(14)
    with pytest.raises(
        DesignError, match="synthetic tumour tiles available, the design needs up to 4"
    ):
        check_capacity(cases, design)
    check_capacity(cases, Design(12))
    for seed in range(50):
        assert len(draw(cases, Design(12), seed)) == 12


def test_fractional_kind_split_is_drawn_not_rounded_to_even():
    cases = pool()
    synthetic = [sum(1 for i in draw(cases, Design(1), seed) if i >= 20) for seed in range(200)]
    assert 60 < sum(synthetic) < 140  # the single practice case is synthetic about half the time


def test_the_largest_fitting_design_is_the_last_that_passes():
    from studies.design import largest_fitting

    cases = pool(per_stratum=4)  # 4 of each kind x label
    for ratio in ((1, 1), (1, 3), (2, 1)):
        design = Design(40, *ratio)
        most = largest_fitting(cases, design)
        check_capacity(cases, Design(most, *ratio))
        with pytest.raises(DesignError):
            check_capacity(cases, Design(most + 1, *ratio))
    assert largest_fitting(cases, Design(40, 1, 1)) == 16
    assert largest_fitting([], Design(5)) == 0
