"""run_experiment's report reads its fidelity rows into sentences, and calls a scheme apart from
label prompts only where their intervals do not overlap."""

from __future__ import annotations

from types import SimpleNamespace

from generation.experiment.findings import fidelity_comparison


def row(scheme: str, share: float, low: float | None, high: float | None, **extra):
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


def test_a_scheme_beats_label_prompts_only_when_the_intervals_do_not_overlap():
    apart = fidelity_comparison(
        [
            row("label", 0.10, 0.07, 0.14),
            row("morphology", 0.30, 0.25, 0.35, morphology_chance=0.02),
            row("features", 0.13, 0.09, 0.17),
        ]
    )[0]
    assert apart.startswith("- Morphology agreement")
    # best first, each with its interval and its own cohort's chance
    assert (
        "morphology 0.300 (0.250-0.350; chance 0.020), features 0.130 (0.090-0.170; chance "
        "0.030), label 0.100 (0.070-0.140; chance 0.030)."
    ) in apart
    assert "Morphology prompts place tiles in their type more often than label prompts" in apart
    assert "Features and label prompts are not separated: their intervals overlap." in apart

    lower = fidelity_comparison(
        [row("label", 0.30, 0.25, 0.35), row("morphology", 0.1, 0.07, 0.14)]
    )
    assert "Morphology prompts place tiles in their type less often than label prompts" in lower[0]


def test_missing_or_undefined_measures_are_left_out():
    nan = float("nan")
    lines = fidelity_comparison(
        [
            row("label", 0.1, None, None, label_auc=0.80, reader_auc=0.99, morphology_chance=None),
            row("features", 0.2, 0.1, 0.3, label_auc=0.95, reader_auc=nan, label_auc_real=0.96),
            row("morphology", nan, nan, nan, label_auc=nan, reader_auc=0.7),
        ]
    )
    assert len(lines) == 3
    # no interval, no chance: the bare share; no verdict against a label row without interval
    assert lines[0].endswith("features 0.200 (0.100-0.300; chance 0.030), label 0.100.")
    assert "often" not in lines[0] and "overlap" not in lines[0]
    assert "features 0.950 (0.850-0.950), label 0.800 (0.850-0.950)" in lines[1]
    assert "on real tiles: 0.960-0.970." in lines[1]  # two evaluations, two real-tile AUCs
    assert "nan" not in " ".join(lines)
    assert lines[2].endswith("morphology 0.700, label 0.990.")  # closest to 0.5 first
    assert fidelity_comparison([]) == []
