"""run_experiment's report reads its fidelity rows into sentences, and calls two schemes apart
only where their intervals do not overlap."""

from __future__ import annotations

from types import SimpleNamespace

from generation.experiment.report import fidelity_comparison


def row(scheme: str, share: float, low: float, high: float, **extra: float | None):
    values = dict(label_auc=0.9, label_auc_low=0.85, label_auc_high=0.95, label_auc_real=0.97,
                  reader_auc=0.8, morphology_chance=0.03)  # fmt: skip
    values.update(extra)
    return SimpleNamespace(
        generator=SimpleNamespace(scheme=scheme),
        morphology_share=share,
        morphology_low=low,
        morphology_high=high,
        **values,
    )


def test_morphology_prompts_win_only_when_the_intervals_do_not_overlap():
    apart = fidelity_comparison(
        [row("label", 0.10, 0.07, 0.14), row("morphology", 0.30, 0.25, 0.35)]
    )
    assert apart[0].startswith("- Morphology agreement")
    assert "morphology 0.300 (0.250-0.350), label 0.100 (0.070-0.140)" in apart[0]
    assert "chance 0.030)" in apart[0]  # one chance where the schemes share their strata
    assert "Morphology prompts place tiles in their type more often than label prompts" in apart[0]

    close = fidelity_comparison(
        [row("label", 0.10, 0.07, 0.14), row("morphology", 0.13, 0.09, 0.17)]
    )
    assert "not separated: their intervals overlap" in close[0]

    reversed_ = fidelity_comparison(
        [row("label", 0.30, 0.25, 0.35), row("morphology", 0.1, 0.07, 0.14)]
    )
    assert (
        "Label prompts place tiles in their type more often than morphology prompts" in reversed_[0]
    )


def test_label_fidelity_and_readers_are_listed_best_first():
    lines = fidelity_comparison(
        [
            row("label", 0.1, 0.07, 0.14, label_auc=0.80, reader_auc=0.99),
            row(
                "features",
                0.1,
                0.07,
                0.14,
                label_auc=0.95,
                reader_auc=0.70,
                label_auc_real=0.96,
                morphology_chance=0.02,
            ),
        ]
    )
    assert len(lines) == 3
    assert "chance 0.020-0.030)" in lines[0]  # each cohort has its own chance: the span
    assert "features 0.950 (0.850-0.950), label 0.800 (0.850-0.950)" in lines[1]
    assert "on real tiles: 0.960-0.970." in lines[1]  # two evaluations, two real-tile AUCs
    assert lines[2].endswith("features 0.700, label 0.990.")  # best (closest to 0.5) first
    # without the verdict pair there is no verdict, and missing measures are left out
    only = fidelity_comparison([row("features", 0.2, 0.1, 0.3, label_auc=None, reader_auc=None)])
    assert len(only) == 1 and "overlap" not in only[0]
    assert fidelity_comparison([]) == []
